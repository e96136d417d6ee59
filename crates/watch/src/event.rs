//! Typed watch events: [`WatchEvent`] and its [`EventKind`].
//!
//! etcd's `mvccpb.Event` is a protobuf message: its type is an `i32`, its
//! key-value an `Option`, and prost's generated `r#type()` reads an unknown
//! number as `Put`. Matching on it is noisy and, for a number a newer
//! server might send, wrong. [`WatchEvent`] gives the same message a typed
//! face: [`kind`](WatchEvent::kind) (an unknown number is
//! [`EventKind::Unknown`], never a panic or a silent `Put`),
//! [`key`](WatchEvent::key), [`value`](WatchEvent::value),
//! [`is_create`](WatchEvent::is_create), and the rest, at no cost per
//! event ([`WatchEvent`] says why it is a `#[repr(transparent)]` wrapper).
//!
//! ```
//! use etcd_tower_core::proto::mvccpb::{Event, KeyValue};
//! use etcd_tower_watch::{EventKind, WatchEvent};
//!
//! let kv = KeyValue { key: "k".into(), value: "v".into(), create_revision: 5, mod_revision: 5, ..Default::default() };
//! let event = WatchEvent::from(Event { r#type: 0, kv: Some(kv), prev_kv: None });
//! assert_eq!(event.kind(), EventKind::Put);
//! assert_eq!((event.key_str(), event.value_str()), (Ok("k"), Ok("v")));
//! assert!(event.is_create());
//! ```

use std::ops::Deref;
use std::str::Utf8Error;

use bytes::Bytes;
use etcd_tower_core::proto::mvccpb::{event::EventType, Event, KeyValue};

/// What happened to the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key was written (created or updated: see
    /// [`WatchEvent::is_create`]).
    Put,
    /// The key was deleted (or its lease expired).
    Delete,
    /// A type number this client does not know (a newer server's); the
    /// event is delivered rather than dropped or misread.
    Unknown(i32),
}

impl EventKind {
    /// The kind of the protobuf type number.
    pub fn from_proto(number: i32) -> Self {
        match EventType::try_from(number) {
            Ok(EventType::Put) => EventKind::Put,
            Ok(EventType::Delete) => EventKind::Delete,
            Err(_) => EventKind::Unknown(number),
        }
    }
}

/// An empty byte string for the accessors of an event without a key-value
/// (a malformed message: etcd always sends one).
static EMPTY: Bytes = Bytes::new();

/// One event of a [`WatchBatch`](crate::WatchBatch): the protobuf message,
/// with typed accessors.
///
/// **Why a `#[repr(transparent)]` wrapper.** A batch may carry thousands of
/// events, and the engine keeps them as the server sent them (it reads
/// their revisions to resume). A wrapper with exactly the layout of the
/// proto message costs nothing: the batch's vector of protos becomes a
/// vector of wrappers in place (same size and alignment, so the standard
/// library reuses the allocation), and every accessor is a field read. An
/// extension trait would have cost nothing too, but would have to be
/// imported to be found; a struct with fields of its own would have moved
/// every event. The wrapper dereferences to the proto message, so code that
/// reads its fields goes on working, and [`as_proto`](WatchEvent::as_proto)
/// / [`into_proto`](WatchEvent::into_proto) hand it out.
#[derive(Clone, Debug, Default, PartialEq)]
#[repr(transparent)]
pub struct WatchEvent(Event);

impl WatchEvent {
    /// Put, delete, or a type this client does not know.
    pub fn kind(&self) -> EventKind {
        EventKind::from_proto(self.0.r#type)
    }

    /// The key-value after the event: for a put the new value, for a
    /// delete the key with an empty value and the deletion's revision.
    pub fn kv(&self) -> Option<&KeyValue> {
        self.0.kv.as_ref()
    }

    /// The key-value before the event, if the watch asked for it
    /// ([`WatchOptions::prev_kv`](crate::WatchOptions::prev_kv)) and the
    /// key existed.
    pub fn prev_kv(&self) -> Option<&KeyValue> {
        self.0.prev_kv.as_ref()
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        self.key_bytes()
    }

    /// The value after the event (empty for a delete).
    pub fn value(&self) -> &[u8] {
        self.value_bytes()
    }

    /// The key, without copying.
    pub fn key_bytes(&self) -> &Bytes {
        self.0.kv.as_ref().map_or(&EMPTY, |kv| &kv.key)
    }

    /// The value, without copying.
    pub fn value_bytes(&self) -> &Bytes {
        self.0.kv.as_ref().map_or(&EMPTY, |kv| &kv.value)
    }

    /// The key as UTF-8.
    pub fn key_str(&self) -> Result<&str, Utf8Error> {
        std::str::from_utf8(self.key())
    }

    /// The value as UTF-8.
    pub fn value_str(&self) -> Result<&str, Utf8Error> {
        std::str::from_utf8(self.value())
    }

    /// The revision of the event (0 for an event without a key-value).
    pub fn mod_revision(&self) -> i64 {
        self.0.kv.as_ref().map_or(0, |kv| kv.mod_revision)
    }

    /// Whether this put created the key (it did not exist before): its
    /// creation revision is the event's revision. False for deletes and
    /// for updates of an existing key.
    pub fn is_create(&self) -> bool {
        self.kind() == EventKind::Put
            && self
                .0
                .kv
                .as_ref()
                .is_some_and(|kv| kv.create_revision == kv.mod_revision)
    }

    /// The protobuf message.
    pub fn as_proto(&self) -> &Event {
        &self.0
    }

    /// The protobuf message, owned.
    pub fn into_proto(self) -> Event {
        self.0
    }
}

impl From<Event> for WatchEvent {
    fn from(event: Event) -> Self {
        WatchEvent(event)
    }
}

impl From<WatchEvent> for Event {
    fn from(event: WatchEvent) -> Self {
        event.0
    }
}

/// The protobuf message's fields, for code that reads them directly.
impl Deref for WatchEvent {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.0
    }
}

/// Wraps a batch's events in place: same layout, so no allocation and no
/// copy (the standard library collects a mapped `vec::IntoIter` into its own
/// allocation when the sizes and alignments agree).
pub(crate) fn wrap(events: Vec<Event>) -> Vec<WatchEvent> {
    events.into_iter().map(WatchEvent).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn event(r#type: i32, create: i64, modified: i64) -> WatchEvent {
        WatchEvent::from(Event {
            r#type,
            kv: Some(KeyValue {
                key: "k".into(),
                value: if r#type == 0 {
                    "v".into()
                } else {
                    Bytes::new()
                },
                create_revision: create,
                mod_revision: modified,
                ..Default::default()
            }),
            prev_kv: None,
        })
    }

    #[test]
    fn kinds_and_creates() {
        assert_eq!(event(0, 3, 3).kind(), EventKind::Put);
        assert!(event(0, 3, 3).is_create());
        assert!(!event(0, 3, 4).is_create(), "an update");
        assert_eq!(event(1, 0, 4).kind(), EventKind::Delete);
        assert!(!event(1, 4, 4).is_create(), "a delete is never a create");
        assert_eq!(event(0, 3, 4).mod_revision(), 4);
        assert_eq!(event(1, 0, 4).value_str(), Ok(""));
    }

    #[test]
    fn an_unknown_type_is_typed_not_a_put_or_a_panic() {
        for number in [2, 7, -1, i32::MAX] {
            let unknown = event(number, 3, 3);
            assert_eq!(unknown.kind(), EventKind::Unknown(number));
            assert!(!unknown.is_create());
            assert_eq!(unknown.key_str(), Ok("k"));
            // What prost's own accessor would have said.
            assert_eq!(unknown.r#type(), EventType::Put);
        }
    }

    #[test]
    fn an_event_without_a_key_value_reads_as_empty() {
        let bare = WatchEvent::default();
        assert_eq!(
            (bare.key(), bare.value(), bare.mod_revision()),
            (&b""[..], &b""[..], 0)
        );
        assert!(bare.kv().is_none() && bare.prev_kv().is_none() && !bare.is_create());
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut raw = event(0, 1, 1).into_proto();
        if let Some(kv) = raw.kv.as_mut() {
            kv.key = Bytes::from_static(b"\xff");
        }
        assert!(WatchEvent::from(raw).key_str().is_err());
    }

    #[test]
    fn wrapping_a_batch_keeps_its_allocation() {
        let events = vec![Event::default(); 64];
        let before = events.as_ptr() as usize;
        let wrapped = wrap(events);
        assert_eq!(wrapped.as_ptr() as usize, before);
        assert_eq!(wrapped.len(), 64);
    }
}
