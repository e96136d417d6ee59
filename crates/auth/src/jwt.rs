//! Reading a JWT token's expiry, to refresh it before the server rejects it.
//!
//! etcd's JWT tokens (`--auth-token jwt,...`) are `header.payload.signature`,
//! each part base64url without padding; the payload is JSON with an `exp`
//! claim (Unix seconds), a `username` and the auth store `revision`. The
//! client cannot check the signature (it has no key) and does not need to:
//! it only reads `exp` to plan a refresh. Anything that does not parse is
//! treated as a token of unknown lifetime (like a simple token), which is
//! refreshed only when the server rejects it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// The `exp` claim of a JWT, or `None` for a simple token (`<16 chars>.<index>`)
/// or anything else that is not a JWT with a numeric `exp`.
pub(crate) fn expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let exp = claims.get("exp")?;
    let secs = match exp.as_u64() {
        Some(secs) => Duration::from_secs(secs),
        None => Duration::try_from_secs_f64(exp.as_f64()?).ok()?,
    };
    UNIX_EPOCH.checked_add(secs)
}

/// When to refresh a token that expires at `exp`, as a delay from `now`: at
/// `fraction` of its remaining lifetime. `None` when the token has (by our
/// clock) less than [`MIN_LIFETIME`] left: the clocks disagree or the token
/// is about to die anyway, and refreshing ahead would refresh on every call;
/// the server's rejection will tell instead.
pub(crate) fn refresh_delay(exp: SystemTime, now: SystemTime, fraction: f64) -> Option<Duration> {
    let remaining = exp.duration_since(now).ok()?;
    if remaining < MIN_LIFETIME {
        return None;
    }
    Some(remaining.mul_f64(fraction))
}

/// Below this remaining lifetime a token is not refreshed ahead of time.
pub(crate) const MIN_LIFETIME: Duration = Duration::from_millis(500);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;

    /// A token shaped like etcd's RS256 JWTs, with the given payload.
    pub(crate) fn token_with_payload(payload: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(payload.as_bytes());
        format!("{header}.{payload}.c2lnbmF0dXJl")
    }

    /// A JWT for `root` expiring at `exp` (Unix seconds).
    pub(crate) fn jwt_expiring_at(exp: u64) -> String {
        token_with_payload(&format!(
            r#"{{"exp":{exp},"revision":7,"username":"root"}}"#
        ))
    }

    #[test]
    fn reads_exp_from_a_jwt() {
        let token = jwt_expiring_at(1_700_000_123);
        assert_eq!(
            expiry(&token),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_123))
        );
    }

    #[test]
    fn reads_an_etcd_shaped_jwt() {
        // The claims etcd's JWT provider writes (`exp`, `revision`,
        // `username`), base64url without padding; signature shortened.
        let token = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJleHAiOjE3MjAwMDAwMDAsInJldmlzaW9uIjoyLCJ1c2VybmFtZSI6InJvb3QifQ.\
            SGVsbG8";
        assert_eq!(
            expiry(token),
            Some(UNIX_EPOCH + Duration::from_secs(1_720_000_000))
        );
    }

    #[test]
    fn accepts_padding_and_fractional_exp() {
        let header = URL_SAFE.encode(b"{}");
        let payload = URL_SAFE.encode(br#"{"exp":10.5}"#);
        let token = format!("{header}.{payload}.sig");
        assert_eq!(
            expiry(&token),
            Some(UNIX_EPOCH + Duration::from_millis(10_500))
        );
    }

    #[test]
    fn simple_tokens_and_garbage_have_no_expiry() {
        for token in [
            "kGDKGiSVXhYLqrKm.42",
            "",
            "a.b.c.d",
            "a.!!!.c",
            &token_with_payload("not json"),
            &token_with_payload(r#"{"username":"root"}"#),
            &token_with_payload(r#"{"exp":"soon"}"#),
            &token_with_payload(r#"{"exp":-5}"#),
        ] {
            assert_eq!(expiry(token), None, "{token}");
        }
    }

    proptest::proptest! {
        /// Whatever the server (or something pretending to be one) hands
        /// out as a token, reading it never panics.
        #[test]
        fn any_text_reads_without_a_panic(token in "\\PC*", dotted in "[A-Za-z0-9_=.!-]{0,64}") {
            let _ = expiry(&token);
            let _ = expiry(&dotted);
        }

        /// A real JWT with bytes flipped, cut or inserted anywhere still
        /// reads without a panic (`None` or some time).
        #[test]
        fn a_mangled_jwt_reads_without_a_panic(
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<char>(), 0u8..3), 1..8),
        ) {
            let mut token: Vec<char> = jwt_expiring_at(1_700_000_123).chars().collect();
            for (at, c, how) in edits {
                let at = at.index(token.len() + 1);
                match how {
                    0 if at < token.len() => token[at] = c,
                    1 if at < token.len() => {
                        token.remove(at);
                    }
                    _ => token.insert(at, c),
                }
            }
            let _ = expiry(&token.into_iter().collect::<String>());
        }

        /// Any integer `exp` reads back as that many seconds after the
        /// epoch, or as no expiry when the clock cannot hold it.
        #[test]
        fn any_integer_exp_reads_back(exp in proptest::prelude::any::<u64>()) {
            proptest::prop_assert_eq!(
                expiry(&jwt_expiring_at(exp)),
                UNIX_EPOCH.checked_add(Duration::from_secs(exp))
            );
        }

        /// A fractional or negative `exp` is a time when it is one, never a
        /// panic.
        #[test]
        fn any_fractional_exp_reads_back(exp in -1e12f64..1e12) {
            let token = token_with_payload(&format!(r#"{{"exp":{exp:?}}}"#));
            let expected = Duration::try_from_secs_f64(exp)
                .ok()
                .and_then(|secs| UNIX_EPOCH.checked_add(secs));
            // serde_json parses floats to within an ulp (not exactly, without
            // its `float_roundtrip` feature): 122 µs at 9.8e11 s.
            let read = expiry(&token);
            let ulps = Duration::from_secs_f64(exp.abs() * 4.0 * f64::EPSILON);
            let close = match (read, expected) {
                (Some(read), Some(expected)) => {
                    let diff = read.duration_since(expected).or_else(|_| expected.duration_since(read));
                    diff.is_ok_and(|diff| diff <= ulps.max(Duration::from_micros(1)))
                }
                (read, expected) => read == expected,
            };
            proptest::prop_assert!(close, "{exp:?}: read {read:?}, expected {expected:?}");
        }
    }

    #[test]
    fn refreshes_at_a_fraction_of_the_remaining_lifetime() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let exp = now + Duration::from_secs(300);
        assert_eq!(refresh_delay(exp, now, 0.8), Some(Duration::from_secs(240)));
        // Expired or nearly expired by our clock: no refresh ahead of time.
        assert_eq!(refresh_delay(now, exp, 0.8), None);
        assert_eq!(
            refresh_delay(now + Duration::from_millis(100), now, 0.8),
            None
        );
    }
}
