//! Phone number normalization: E.164 when a number looks like one; short extensions and
//! anonymous callers are kept apart instead of being forced into a phone number.

use crate::config::TrackerConfig;

/// What kind of number a caller ID is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKind {
    /// International, `+` and 7 to 15 digits.
    E164,
    /// Digits that are not international and could not be made so (no country code set).
    National,
    /// An internal extension.
    Extension,
    /// The caller withheld the number.
    Anonymous,
    /// Anything else (a SIP URI, letters).
    Other,
}

/// A normalized number and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    /// The normalized text (`+15551230001`, `101`, `anonymous`).
    pub text: String,
    /// What it is.
    pub kind: NumberKind,
}

/// Normalizes a caller ID number. `None` for empty or `<unknown>`.
pub fn classify_number(raw: &str, config: &TrackerConfig) -> Option<PhoneNumber> {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("<unknown>") {
        return None;
    }
    if [
        "anonymous",
        "restricted",
        "unavailable",
        "private",
        "withheld",
        "unknown",
    ]
    .iter()
    .any(|w| raw.eq_ignore_ascii_case(w))
    {
        return Some(PhoneNumber {
            text: "anonymous".to_owned(),
            kind: NumberKind::Anonymous,
        });
    }
    let separator = |c: char| matches!(c, ' ' | '-' | '(' | ')' | '.');
    let compact: std::borrow::Cow<'_, str> = if raw.contains(separator) {
        raw.chars()
            .filter(|c| !separator(*c))
            .collect::<String>()
            .into()
    } else {
        raw.into()
    };
    let (plus, digits) = match compact.strip_prefix('+') {
        Some(d) => (true, d),
        None => match compact.strip_prefix("00") {
            Some(d) if d.len() >= 7 => (true, d),
            _ => (false, &*compact),
        },
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(PhoneNumber {
            text: raw.to_owned(),
            kind: NumberKind::Other,
        });
    }
    if plus {
        let kind = if (7..=15).contains(&digits.len()) {
            NumberKind::E164
        } else {
            NumberKind::Other
        };
        return Some(PhoneNumber {
            text: format!("+{digits}"),
            kind,
        });
    }
    if config.is_extension(digits) {
        return Some(PhoneNumber {
            text: digits.to_owned(),
            kind: NumberKind::Extension,
        });
    }
    if let Some(cc) = &config.country_code {
        let national = if !config.national_prefix.is_empty() {
            digits.strip_prefix(config.national_prefix.as_str())
        } else {
            None
        };
        let full = match national {
            Some(rest) => format!("{cc}{rest}"),
            None if digits.starts_with(cc.as_str()) && digits.len() >= 10 => digits.to_owned(),
            None => format!("{cc}{digits}"),
        };
        if (7..=15).contains(&full.len()) {
            return Some(PhoneNumber {
                text: format!("+{full}"),
                kind: NumberKind::E164,
            });
        }
    }
    Some(PhoneNumber {
        text: digits.to_owned(),
        kind: NumberKind::National,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, config: &TrackerConfig) -> String {
        match classify_number(raw, config) {
            Some(n) => format!("{} {:?}", n.text, n.kind),
            None => "none".to_owned(),
        }
    }

    #[test]
    fn normalizes_numbers() {
        let plain = TrackerConfig::default();
        let ru = TrackerConfig {
            country_code: Some("7".to_owned()),
            national_prefix: "8".to_owned(),
            ..TrackerConfig::default()
        };
        let cases = [
            ("+15551230001", &plain, "+15551230001 E164"),
            ("0015551230001", &plain, "+15551230001 E164"),
            ("101", &plain, "101 Extension"),
            ("<unknown>", &plain, "none"),
            ("", &plain, "none"),
            ("Anonymous", &plain, "anonymous Anonymous"),
            ("89161234567", &plain, "89161234567 National"),
            ("89161234567", &ru, "+79161234567 E164"),
            ("79161234567", &ru, "+79161234567 E164"),
            ("9161234567", &ru, "+79161234567 E164"),
            ("+7 (916) 123-45-67", &plain, "+79161234567 E164"),
            (
                "sip:alice@example.com",
                &plain,
                "sip:alice@example.com Other",
            ),
        ];
        for (raw, config, want) in cases {
            assert_eq!(check(raw, config), want, "{raw}");
        }
    }
}
