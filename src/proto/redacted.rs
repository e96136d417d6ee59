//! `Debug` for the messages that carry a password or a token.
//!
//! prost derives `Debug` for every message, printing every field. For the
//! five messages that hold a secret, `build.rs` skips that derive and this
//! module writes it with the secret replaced by `<redacted>` (an empty
//! secret prints as `""`, so a missing password stays visible). Everything
//! else prints as prost would, so logs of these calls stay useful.

use std::fmt;

use super::authpb::User;
use super::etcdserverpb::{
    AuthUserAddRequest, AuthUserChangePasswordRequest, AuthenticateRequest, AuthenticateResponse,
};

/// A secret's stand-in in `Debug` output.
struct Redacted<'a>(&'a [u8]);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}

impl fmt::Debug for AuthenticateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticateRequest")
            .field("name", &self.name)
            .field("password", &Redacted(self.password.as_bytes()))
            .finish()
    }
}

impl fmt::Debug for AuthenticateResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticateResponse")
            .field("header", &self.header)
            .field("token", &Redacted(self.token.as_bytes()))
            .finish()
    }
}

impl fmt::Debug for AuthUserAddRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthUserAddRequest")
            .field("name", &self.name)
            .field("password", &Redacted(self.password.as_bytes()))
            .field("options", &self.options)
            .field(
                "hashed_password",
                &Redacted(self.hashed_password.as_bytes()),
            )
            .finish()
    }
}

impl fmt::Debug for AuthUserChangePasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthUserChangePasswordRequest")
            .field("name", &self.name)
            .field("password", &Redacted(self.password.as_bytes()))
            .field(
                "hashed_password",
                &Redacted(self.hashed_password.as_bytes()),
            )
            .finish()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("password", &Redacted(&self.password))
            .field("roles", &self.roles)
            .field("options", &self.options)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_but_the_rest_does() {
        let printed = [
            format!(
                "{:?}",
                AuthenticateRequest {
                    name: "root".into(),
                    password: "hunter2".into(),
                }
            ),
            format!(
                "{:?}",
                AuthenticateResponse {
                    header: None,
                    token: "hunter2.tok.42".into(),
                }
            ),
            format!(
                "{:?}",
                AuthUserAddRequest {
                    name: "root".into(),
                    password: "hunter2".into(),
                    options: None,
                    hashed_password: "$2a$hunter2".into(),
                }
            ),
            format!(
                "{:?}",
                AuthUserChangePasswordRequest {
                    name: "root".into(),
                    password: "hunter2".into(),
                    hashed_password: String::new(),
                }
            ),
            format!(
                "{:?}",
                User {
                    name: "root".into(),
                    password: "hunter2".into(),
                    roles: vec!["root".into()],
                    options: None,
                }
            ),
        ];
        for text in &printed {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        assert!(printed[0].contains("\"root\""), "{}", printed[0]);
        assert!(
            printed[3].contains("hashed_password: \"\""),
            "{}",
            printed[3]
        );
    }
}
