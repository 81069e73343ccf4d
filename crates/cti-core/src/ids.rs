//! Newtypes for the identifiers the tracker juggles, so a `Uniqueid` is never passed where a
//! `Linkedid` or an extension is expected.

use std::borrow::Borrow;
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value as received; no validation (ids are opaque strings).
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// One channel (one leg) on the PBX: Asterisk's `Uniqueid`. Opaque; never parsed.
    Uniqueid
);
string_id!(
    /// The id Asterisk gives to a group of channels that belong together (`Linkedid`).
    LinkedId
);
string_id!(
    /// Our id of one customer interaction. For Asterisk it is the first Linkedid of the family.
    CallId
);
string_id!(
    /// An internal extension (an agent's phone), e.g. `101`.
    Extension
);
string_id!(
    /// A bridge on the PBX (`BridgeUniqueid`).
    BridgeId
);
string_id!(
    /// A call queue name, e.g. `sales`.
    QueueName
);
