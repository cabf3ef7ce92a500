//! A secret setting's value (a password, a client secret).
//!
//! Owns: keeping the value out of `Debug` output and logs.
//! Must not: be compared or printed by anything but the one call that needs the value.

/// A secret string: compared by value, never printed (`Debug` shows `Secret(***)`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}
