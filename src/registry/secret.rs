//! Secrets held in memory only: the registry password (the ECR authorization
//! token) and bearer tokens. A [`Secret`] prints as `<redacted>` through both
//! `Debug` and `Display`, is not `Serialize`, and is overwritten with zeros
//! when dropped (best effort), so it cannot leak through logs, error messages
//! or a serialized report. Read it only with [`Secret::expose`], at the point
//! where it goes into a request header.

use std::fmt;

/// A string that must never be printed, logged or written to disk.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself; use it only to build a request.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

/// A registry user name and password, e.g. `AWS` and the ECR token.
/// `Debug` shows the user name and redacts the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The user name (`AWS` for ECR).
    pub username: String,
    /// The password, never printed.
    pub password: Secret,
}

impl Credentials {
    /// Builds credentials from a user name and a password.
    pub(crate) fn new(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("123456789012-auth-token");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{s:#?}"), "<redacted>");
        assert_eq!(s.expose(), "123456789012-auth-token");
    }

    #[test]
    fn credentials_debug_redacts_password_but_shows_user() {
        let c = Credentials::new("AWS", "hunter2-token");
        let dbg = format!("{c:?}");
        let pretty = format!("{c:#?}");
        assert!(dbg.contains("AWS"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!pretty.contains("hunter2"), "{pretty}");
    }

    #[test]
    fn empty_secret_is_detected() {
        assert!(Secret::new("").is_empty());
        assert!(!Secret::from("x").is_empty());
    }
}
