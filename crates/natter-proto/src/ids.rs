//! The ids every dialect names, as distinct types: an ocid cannot be passed where a chat id is
//! expected. Each is a `u64` on the wire (serialized as the bare number).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize,
            Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<u64> for $name {
            fn from(n: u64) -> Self {
                Self(n)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

id! {
    /// An account's public number, the "OC number" of the seeds (10001 and up).
    Ocid
}
id! {
    /// A chat (private or group); for groups this is the seeds' `group_id`.
    ChatId
}
id! {
    /// A server-assigned message id (v1 `cid`, v0 `mid`), rising with the index in each chat.
    MessageId
}
id! {
    /// A message's position in its chat: 1, 2, 3... with no gaps; 0 is "before the first".
    Index
}

impl Index {
    /// Before the first message.
    pub const ZERO: Self = Self(0);

    /// The index `n` places after this one.
    #[must_use]
    pub const fn plus(self, n: u64) -> Self {
        Self(self.0.saturating_add(n))
    }

    /// The next index.
    #[must_use]
    pub const fn next(self) -> Self {
        self.plus(1)
    }

    /// How many indexes lie after `earlier` up to this one (0 when `earlier` is not earlier).
    pub const fn since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bare_numbers_on_the_wire() {
        assert_eq!(serde_json::to_string(&Ocid(10001)).expect("json"), "10001");
        let chat: ChatId = serde_json::from_str("7").expect("json");
        assert_eq!(chat, ChatId(7));
        assert_eq!(Ocid(5).to_string(), "5");
        assert_eq!("12".parse::<Index>(), Ok(Index(12)));
    }

    #[test]
    fn index_arithmetic() {
        assert_eq!(Index(4).next(), Index(5));
        assert_eq!(Index(4).plus(3), Index(7));
        assert_eq!(Index(9).since(Index(4)), 5);
        assert_eq!(Index(4).since(Index(9)), 0);
        assert_eq!(Index(u64::MAX).next(), Index(u64::MAX));
    }
}
