//! [`Endpoint`] and its stored form: the JSON that Go's
//! `client/v3/naming/endpoints` package writes and reads.
//!
//! Go services register with `endpoints.Manager.AddEndpoint(ctx, key,
//! endpoints.Endpoint{Addr, Metadata})`; the manager stores, under `key`,
//! `json.Marshal` of its `internal.Update` (etcd v3.5.30,
//! `client/v3/naming/endpoints/internal/update.go`, unchanged since v3.5.0
//! and the same layout as etcd 3.4's `clientv3/naming`, which marshalled
//! gRPC's `naming.Update`):
//!
//! ```go
//! type Update struct {
//!     // Op indicates the operation of the update.
//!     // Since etcd 3.1.
//!     Op Operation   // uint8: Add = 0, Delete = 1
//!     // Addr is the updated address. It is empty string if there is no address update.
//!     // Since etcd 3.1.
//!     Addr string
//!     // Metadata is the updated metadata. It is nil if there is no metadata update.
//!     // Metadata is not required for a custom naming implementation.
//!     // Since etcd 3.1.
//!     Metadata interface{}
//! }
//! ```
//!
//! No field has a JSON tag, so the value reads
//! `{"Op":0,"Addr":"10.0.0.1:8080","Metadata":null}`: the fields in that
//! order, `Metadata` `null` when Go's is `nil`. [`Endpoint::to_json`]
//! writes exactly those bytes, escaping strings as `encoding/json` does
//! (`<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes, `\b` and `\f` short
//! as Go 1.22+ writes them) and the metadata's object keys sorted, as Go
//! marshals a `map[string]interface{}`. Numbers in the metadata are
//! written as serde_json writes them (the same value; a float's spelling
//! may differ from Go's, as `1e21` for Go's `1e+21`). The bytes were
//! checked against those Go 1.27.3 with `go.etcd.io/etcd/client/v3`
//! 3.5.30 wrote (the unit tests quote them).
//!
//! [`Endpoint::from_json`] reads what Go's `json.Unmarshal` into that
//! struct accepts, as the manager's `List` and `NewWatchChannel` use it:
//! field names matched without regard to ASCII case, the last of repeated
//! fields winning, unknown fields ignored, `null` for any field leaving it
//! empty; a value that is not JSON, not an object (or `null`), or whose
//! `Op` is not a `uint8` or `Addr` not a string fails, and Go's readers
//! skip such an endpoint (so do ours, with a warning). `Op` is read but
//! not used: Go's readers take a put as an addition whatever its `Op`
//! says, and a delete as a removal.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// One instance of a service: the address to reach it at, and whatever
/// else its owner wants to say about it. Go's `endpoints.Endpoint`.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Where the instance is reached (`host:port`, a URL: the reader's
    /// convention; Go's gRPC resolver dials it).
    pub addr: String,
    /// Anything else, as JSON; `Null` (Go's `nil`) when there is none.
    pub metadata: Value,
}

impl Endpoint {
    /// An endpoint at `addr`, without metadata.
    pub fn new(addr: impl Into<String>) -> Self {
        Endpoint {
            addr: addr.into(),
            metadata: Value::Null,
        }
    }

    /// The same endpoint with `metadata`.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// The stored form: the bytes Go's endpoints manager writes for this
    /// endpoint (see the [module docs](self)).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.addr.len() + 40);
        out.push_str("{\"Op\":0,\"Addr\":");
        write_go_string(&mut out, &self.addr);
        out.push_str(",\"Metadata\":");
        write_go_value(&mut out, &self.metadata);
        out.push('}');
        out
    }

    /// Reads a stored value as Go's endpoints manager reads it (see the
    /// [module docs](self)).
    pub fn from_json(value: &[u8]) -> Result<Endpoint, DecodeError> {
        let wire: Option<Wire> = serde_json::from_slice(value).map_err(DecodeError)?;
        let wire = wire.unwrap_or_default();
        Ok(Endpoint {
            addr: wire.addr.unwrap_or_default(),
            metadata: wire.metadata,
        })
    }
}

/// A stored value that Go's endpoints manager would not read either: not
/// JSON, not an object, or with an `Op` or `Addr` of the wrong type.
#[derive(Debug)]
pub struct DecodeError(serde_json::Error);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the value is not an endpoint in Go's format: {}", self.0)
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Go's `internal.Update` as `json.Unmarshal` fills it.
#[derive(Default)]
struct Wire {
    addr: Option<String>,
    metadata: Value,
}

impl<'de> Deserialize<'de> for Wire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(WireVisitor)
    }
}

struct WireVisitor;

impl<'de> Visitor<'de> for WireVisitor {
    type Value = Wire;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with the fields Op, Addr and Metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire, A::Error> {
        let mut wire = Wire::default();
        // In document order, so that the last of repeated fields wins;
        // Go's decoder matches field names case-insensitively (the
        // Unicode folds it also applies change none of these three names).
        while let Some(name) = map.next_key::<String>()? {
            if name.eq_ignore_ascii_case("Op") {
                match map.next_value::<Value>()? {
                    Value::Null => {}
                    Value::Number(n) if n.as_u64().is_some_and(|op| op <= 255) => {}
                    other => {
                        return Err(de::Error::custom(format!(
                            "Op must be a uint8, not {other}"
                        )))
                    }
                }
            } else if name.eq_ignore_ascii_case("Addr") {
                match map.next_value::<Value>()? {
                    Value::Null => {}
                    Value::String(addr) => wire.addr = Some(addr),
                    other => {
                        return Err(de::Error::custom(format!(
                            "Addr must be a string, not {other}"
                        )))
                    }
                }
            } else if name.eq_ignore_ascii_case("Metadata") {
                wire.metadata = map.next_value::<Value>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(wire)
    }
}

/// Writes `value` as Go's `json.Marshal` writes the `interface{}` that
/// `json.Unmarshal` made of it: object keys sorted by bytes.
fn write_go_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_go_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_value(out, item);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut sorted: Vec<_> = fields.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(out, key);
                out.push(':');
                write_go_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Writes `s` quoted as Go's `encoding/json` (1.22+, HTML escaping on, as
/// `json.Marshal` has it) writes a string.
fn write_go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    /// What Go 1.22's `json.Marshal(internal.Update{Op: Add, Addr: ..,
    /// Metadata: ..})` writes, byte for byte.
    #[test]
    fn writes_gos_bytes() {
        assert_eq!(
            Endpoint::new("127.0.0.1:8080").to_json(),
            r#"{"Op":0,"Addr":"127.0.0.1:8080","Metadata":null}"#
        );
        let with = Endpoint::new("10.0.0.2:9000")
            .with_metadata(json!({"zone": "b", "weight": 3, "tags": ["x", true], "a": {}}));
        assert_eq!(
            with.to_json(),
            r#"{"Op":0,"Addr":"10.0.0.2:9000","Metadata":{"a":{},"tags":["x",true],"weight":3,"zone":"b"}}"#
        );
        // Written by Go 1.27.3 with go.etcd.io/etcd/client/v3 3.5.30
        // (Debian's golang-etcd-server-dev): `em.AddEndpoint(ctx,
        // "interop/go-meta", endpoints.Endpoint{Addr: "10.0.0.9:7001",
        // Metadata: map[string]any{"zone": "c", "weight": 2, "html": "<&>",
        // "list": []any{1.5, true, nil}}})`, read back with `cli.Get`.
        let go = r#"{"Op":0,"Addr":"10.0.0.9:7001","Metadata":{"html":"\u003c\u0026\u003e","list":[1.5,true,null],"weight":2,"zone":"c"}}"#;
        let same = Endpoint::new("10.0.0.9:7001").with_metadata(
            json!({"zone": "c", "weight": 2, "html": "<&>", "list": [1.5, true, null]}),
        );
        assert_eq!(same.to_json(), go);
        assert_eq!(Endpoint::from_json(go.as_bytes()).unwrap(), same);
        assert_eq!(
            Endpoint::new("a<b>&\"\\\n\u{1}\u{8}\u{2028}é").to_json(),
            r#"{"Op":0,"Addr":"a\u003cb\u003e\u0026\"\\\n\u0001\b\u2028é","Metadata":null}"#
        );
    }

    #[test]
    fn reads_what_go_reads() {
        let plain = Endpoint::from_json(br#"{"Op":0,"Addr":"127.0.0.1:8080","Metadata":null}"#);
        assert_eq!(plain.unwrap(), Endpoint::new("127.0.0.1:8080"));
        // Case-insensitive names, unknown fields, the last repeat wins, and
        // Op is not looked at (a put is an addition).
        let loose = Endpoint::from_json(
            br#"{"op":1,"ADDR":"x","extra":[1,2],"addr":"y","metadata":{"k":"v"}}"#,
        );
        assert_eq!(
            loose.unwrap(),
            Endpoint::new("y").with_metadata(json!({"k": "v"}))
        );
        // Missing fields and null are Go's zero values.
        assert_eq!(Endpoint::from_json(b"{}").unwrap(), Endpoint::new(""));
        assert_eq!(Endpoint::from_json(b"null").unwrap(), Endpoint::new(""));
        assert_eq!(
            Endpoint::from_json(br#"{"Addr":null,"Op":null}"#).unwrap(),
            Endpoint::new("")
        );
        // Round trip of ours.
        let ours = Endpoint::new("h:1").with_metadata(json!({"b": [1.5, null], "a": "<"}));
        assert_eq!(
            Endpoint::from_json(ours.to_json().as_bytes()).unwrap(),
            ours
        );
    }

    #[test]
    fn refuses_what_go_refuses() {
        for bad in [
            &b"not json"[..],
            b"\"127.0.0.1:8080\"",
            b"[]",
            br#"{"Op":"add","Addr":"a"}"#,
            br#"{"Op":256,"Addr":"a"}"#,
            br#"{"Op":-1,"Addr":"a"}"#,
            br#"{"Op":1.5,"Addr":"a"}"#,
            br#"{"Op":0,"Addr":5}"#,
            br#"{"Op":0,"Addr":"a""#,
        ] {
            let error = Endpoint::from_json(bad).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("the value is not an endpoint"),
                "{error}"
            );
        }
    }
}
