//! How much state a plugin may keep, and what a guest is told when a
//! write goes over or fails: an error value with its kind, never a trap.

/// A plugin's limits (from its manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Keys and values together, committed and pending.
    pub max_total_bytes: u64,
}

/// A key or value: short ones (a counter, a short key) kept inline,
/// without an allocation of their own.
pub type StateBytes = smallvec::SmallVec<[u8; 16]>;

/// Keys and values in key order, as a scan returns them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A plugin's committed state: bytes of keys and values, and keys.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub bytes: u64,
    pub keys: u64,
}

/// A change of [`Totals`]: bytes and keys added (negative: removed).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TotalsDelta {
    pub bytes: i64,
    pub keys: i64,
}

impl TotalsDelta {
    /// What replacing `before` by `after` (`None`: no value) at a key of
    /// `key_len` bytes changes.
    pub fn replacing(key_len: usize, before: Option<&[u8]>, after: Option<&[u8]>) -> TotalsDelta {
        let size = |value: Option<&[u8]>| {
            value.map_or(TotalsDelta::default(), |value| TotalsDelta {
                bytes: (key_len + value.len()) as i64,
                keys: 1,
            })
        };
        size(after).minus(size(before))
    }

    /// This change and `other` together.
    pub fn plus(self, other: TotalsDelta) -> TotalsDelta {
        TotalsDelta {
            bytes: self.bytes + other.bytes,
            keys: self.keys + other.keys,
        }
    }

    /// This change without `other`.
    pub fn minus(self, other: TotalsDelta) -> TotalsDelta {
        TotalsDelta {
            bytes: self.bytes - other.bytes,
            keys: self.keys - other.keys,
        }
    }

    /// `totals` with this change applied.
    pub fn applied_to(self, totals: Totals) -> Totals {
        Totals {
            bytes: totals.bytes.saturating_add_signed(self.bytes),
            keys: totals.keys.saturating_add_signed(self.keys),
        }
    }
}

/// A counter's value: decimal text of an i64 (readable as it is in
/// `GET /plugins/NAME/state`, and the same bytes in every language).
pub fn parse_counter(text: &[u8]) -> Result<i64, StateError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(StateError::NotANumber)
}

/// Why a state operation failed, as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("empty key")]
    EmptyKey,
    #[error("key longer than the plugin's state_max_key_bytes")]
    KeyTooLarge,
    #[error("value longer than the plugin's state_max_value_kib")]
    ValueTooLarge,
    #[error("the plugin's state would exceed state_limit_mib")]
    OverLimit,
    #[error("the value is not a decimal 64-bit integer, or the sum overflows")]
    NotANumber,
    #[error("state storage failed: {0}")]
    Io(String),
}

impl StateError {
    /// The name /plugins, /metrics and the log use.
    pub fn kind(&self) -> &'static str {
        match self {
            StateError::EmptyKey => "empty_key",
            StateError::KeyTooLarge => "key_too_large",
            StateError::ValueTooLarge => "value_too_large",
            StateError::OverLimit => "over_limit",
            StateError::NotANumber => "not_a_number",
            StateError::Io(_) => "io",
        }
    }
}

impl StateLimits {
    pub fn check_key(&self, key: &[u8]) -> Result<(), StateError> {
        if key.is_empty() {
            Err(StateError::EmptyKey)
        } else if key.len() > self.max_key_bytes {
            Err(StateError::KeyTooLarge)
        } else {
            Ok(())
        }
    }

    pub fn check_value(&self, value: &[u8]) -> Result<(), StateError> {
        if value.len() > self.max_value_bytes {
            Err(StateError::ValueTooLarge)
        } else {
            Ok(())
        }
    }

    pub fn check_total(&self, totals: Totals) -> Result<(), StateError> {
        if totals.bytes > self.max_total_bytes {
            Err(StateError::OverLimit)
        } else {
            Ok(())
        }
    }
}
