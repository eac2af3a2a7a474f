//! Identifiers of the domain objects.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new random identifier (UUID version 4, from the operating system's random source).
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID behind this identifier.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 bytes of the UUID.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Builds an identifier from the 16 bytes of a UUID.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

uuid_id!(
    /// Identifies an account: the customer that owns links and pays credits.
    AccountId
);
uuid_id!(
    /// Identifies a Magic Link.
    LinkId
);
uuid_id!(
    /// Identifies a verification session, created by one redemption of a link.
    SessionId
);
uuid_id!(
    /// Identifies an outbox event; webhooks send it as `webhook-id`, the receiver's idempotency key.
    EventId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text_and_bytes() {
        let id = LinkId::new();
        assert_eq!(id.to_string().parse::<LinkId>().unwrap(), id);
        assert_eq!(LinkId::from_bytes(*id.as_bytes()), id);
        assert!("not a uuid".parse::<LinkId>().is_err());
        assert_ne!(LinkId::new(), LinkId::new());
    }
}
