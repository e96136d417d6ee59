//! Entry points for the libFuzzer targets in `fuzz/` (cargo-fuzz), built
//! only under `--cfg fuzzing`; not part of the API.

use std::time::SystemTime;

use crate::jwt::{expiry, refresh_delay};

/// `data` as a token the server handed out (lossily as UTF-8, as a token
/// is a string): reading its expiry and planning its refresh never panic,
/// and a planned refresh comes before the expiry.
pub fn jwt_expiry(data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    let Some(exp) = expiry(&token) else {
        return;
    };
    let now = SystemTime::now();
    // The layer clamps its fraction to 0.1..=0.95.
    for fraction in [0.1, 0.8, 0.95] {
        if let Some(delay) = refresh_delay(exp, now, fraction) {
            let at = now.checked_add(delay);
            assert!(
                at.is_some_and(|at| at <= exp),
                "{delay:?} after {now:?} is past {exp:?}"
            );
        }
    }
}
