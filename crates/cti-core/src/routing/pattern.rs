//! Asterisk-style number patterns for rule conditions: `_+7495XXXXXXX`, `_8800.`.
//!
//! Supported: literal digits and `+`, `X` (0-9), `Z` (1-9), `N` (2-9), `[1-5]` / `[159]`
//! classes, and a final `.` (one or more of anything) or `!` (zero or more). The leading `_`
//! is optional. What it is not: a regex engine; nothing else is accepted.

use std::fmt;

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPattern {
    source: String,
    items: Vec<Item>,
    tail: Tail,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Literal(u8),
    Class(Vec<(u8, u8)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    Exact,
    OneOrMore,
    ZeroOrMore,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

impl NumberPattern {
    /// Compiles a pattern.
    pub fn parse(text: &str) -> Result<NumberPattern, PatternError> {
        let body = text.strip_prefix('_').unwrap_or(text);
        let bytes = body.as_bytes();
        let mut items = Vec::new();
        let mut tail = Tail::Exact;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'0'..=b'9' | b'+' | b'*' | b'#' => items.push(Item::Literal(b)),
                b'X' | b'x' => items.push(Item::Class(vec![(b'0', b'9')])),
                b'Z' | b'z' => items.push(Item::Class(vec![(b'1', b'9')])),
                b'N' | b'n' => items.push(Item::Class(vec![(b'2', b'9')])),
                b'[' => {
                    let end = body[i..]
                        .find(']')
                        .map(|j| i + j)
                        .ok_or_else(|| PatternError(format!("pattern {text:?}: [ without ]")))?;
                    let class = &bytes[i + 1..end];
                    let mut ranges = Vec::new();
                    let mut k = 0;
                    while k < class.len() {
                        if k + 2 < class.len() && class[k + 1] == b'-' {
                            ranges.push((class[k], class[k + 2]));
                            k += 3;
                        } else {
                            ranges.push((class[k], class[k]));
                            k += 1;
                        }
                    }
                    if ranges.is_empty() || ranges.iter().any(|&(a, z)| a > z) {
                        return Err(PatternError(format!("pattern {text:?}: bad class")));
                    }
                    items.push(Item::Class(ranges));
                    i = end;
                }
                b'.' | b'!' if i + 1 == bytes.len() => {
                    tail = if b == b'.' {
                        Tail::OneOrMore
                    } else {
                        Tail::ZeroOrMore
                    };
                }
                b'-' | b' ' => {}
                _ => {
                    return Err(PatternError(format!(
                        "pattern {text:?}: {:?} is not allowed (digits, +, X, Z, N, [..], final . or !)",
                        b as char
                    )))
                }
            }
            i += 1;
        }
        if items.is_empty() && tail == Tail::Exact {
            return Err(PatternError("an empty pattern".to_owned()));
        }
        Ok(NumberPattern {
            source: text.to_owned(),
            items,
            tail,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole `number` matches.
    pub fn matches(&self, number: &str) -> bool {
        let bytes = number.as_bytes();
        if bytes.len() < self.items.len() {
            return false;
        }
        let head_ok = self.items.iter().zip(bytes).all(|(item, &b)| match item {
            Item::Literal(l) => *l == b,
            Item::Class(ranges) => ranges.iter().any(|&(a, z)| b >= a && b <= z),
        });
        let rest = bytes.len() - self.items.len();
        head_ok
            && match self.tail {
                Tail::Exact => rest == 0,
                Tail::OneOrMore => rest >= 1,
                Tail::ZeroOrMore => true,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_data() {
        let cases = [
            ("_+7495XXXXXXX", "+74951112233", true),
            ("_+7495XXXXXXX", "+749511122334", false),
            ("_+7[89]XX.", "+79161234567", true),
            ("_+7[89]XX.", "+74951234567", false),
            ("_+7[3-4]9.", "+74991234567", true),
            ("_8800.", "88001234567", true),
            ("_8800.", "8800", false),
            ("_8800!", "8800", true),
            ("_1NXX", "1200", true),
            ("_1NXX", "1100", false),
            ("101", "101", true),
        ];
        for (pattern, number, want) in cases {
            let compiled = NumberPattern::parse(pattern).expect("test pattern compiles");
            assert_eq!(compiled.matches(number), want, "{pattern} ~ {number}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "_", "_+7[49", "_79.1", "_abc"] {
            assert!(NumberPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
