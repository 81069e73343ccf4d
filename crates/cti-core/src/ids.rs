//! Newtypes for the identifiers the tracker juggles, so a `Uniqueid` is never passed where a
//! `Linkedid` or an extension is expected.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Bytes an id keeps inside itself: the enum below is then as large as a `String` (24 bytes)
/// and Asterisk ids (`1700000000.6700`, `pbx1-1700000000.12345`) need no allocation.
const INLINE: usize = 22;

/// The text of an id: short ones inline (no allocation to make, clone or drop; the tracker
/// copies ids into several maps for every channel), longer ones on the heap.
///
/// Equality, order and hash are those of the text's bytes, i.e. of the `str` (a `str` hashes
/// as its bytes then `0xff`), so that maps keyed by an id can be searched by `&str`.
#[derive(Clone)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    fn from_str(text: &str) -> Self {
        if text.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Text::Inline {
                len: text.len() as u8,
                bytes,
            }
        } else {
            Text::Heap(text.into())
        }
    }

    fn from_string(text: String) -> Self {
        if text.len() <= INLINE {
            Self::from_str(&text)
        } else {
            Text::Heap(text.into_boxed_str())
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Text::Heap(text) => text.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Always valid: the bytes were copied from a `str`, whole (no cut in a character).
            Text::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Text::Heap(text) => text,
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::Inline {
            len: 0,
            bytes: [0; INLINE],
        }
    }
}

impl PartialEq for Text {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Text {}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Text {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Exactly what `str::hash` does (`Hasher::write_str`'s default), without first
        // checking the bytes are UTF-8 again.
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(Text);

        impl $name {
            /// Wraps a value as received; no validation (ids are opaque strings).
            pub fn new(value: impl Into<String>) -> Self {
                Self(Text::from_string(value.into()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// Whether the id is the empty text.
            #[inline]
            pub fn is_empty(&self) -> bool {
                self.0.as_bytes().is_empty()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(Text::from_str(value))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(Text::from_string(value))
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                self.as_str()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::collections::HashMap;

    fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn ids_behave_like_their_text_inline_or_not() {
        let texts = [
            "",
            "1700000000.6700",
            "exactly-twenty-two-by",
            "twenty-three-bytes-long",
            "pbx1-1700000000.12345678901234567890",
            "Кириллица",
            "Длинная кириллица, больше двадцати двух байт",
        ];
        for text in texts {
            let id = Uniqueid::from(text);
            assert_eq!(id.as_str(), text);
            assert_eq!(id, Uniqueid::new(text.to_owned()));
            assert_eq!(id, Uniqueid::from(text.to_owned()));
            assert_eq!(id.is_empty(), text.is_empty());
            assert_eq!(id.to_string(), text);
            assert_eq!(format!("{id:?}"), format!("Uniqueid({text:?})"));
            // Maps keyed by ids are searched by `&str`: the hashes must agree.
            assert_eq!(hash_of(&id), hash_of(text), "{text}");
            let mut fx = crate::fxhash::FxHasher::default();
            id.hash(&mut fx);
            let mut fx_str = crate::fxhash::FxHasher::default();
            text.hash(&mut fx_str);
            assert_eq!(fx.finish(), fx_str.finish(), "{text}");
            let map: HashMap<Uniqueid, u32> = [(id.clone(), 1)].into();
            assert_eq!(map.get(text), Some(&1));
        }
        for a in texts {
            for b in texts {
                assert_eq!(Uniqueid::from(a).cmp(&Uniqueid::from(b)), a.cmp(b));
                assert_eq!(Uniqueid::from(a) == Uniqueid::from(b), a == b);
            }
        }
        assert_eq!(Uniqueid::default().as_str(), "");
        assert_eq!(
            std::mem::size_of::<Uniqueid>(),
            std::mem::size_of::<String>()
        );
    }
}
