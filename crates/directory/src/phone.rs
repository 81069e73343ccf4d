//! Phone number normalization to E.164 and formatting for display.
//!
//! The API other crates rely on (the CRM connectors, the FastAGI server, the HTTP route
//! endpoint); it is kept stable:
//!
//! ```text
//! Region::parse("RU") -> Result<Region, PhoneError>       // default region from config
//! normalize(raw: &str, region: Region) -> Normalized       // never fails, never panics
//!     Normalized::E164(E164)      // +79161234567, stored and looked up as a u64
//!     Normalized::Extension(s)    // "101": an internal short number, not a customer
//!     Normalized::Withheld        // anonymous / restricted / unknown / empty caller ID
//!     Normalized::Other(s)        // a SIP URI, letters, a number that is not valid
//! Normalized::e164(&self) -> Option<E164>
//! E164::parse("+79161234567") -> Option<E164>              // strict, for stored values
//! E164::from_u64 / as_u64 / Display ("+79161234567")
//! format_display(number: E164, region: Region) -> String  // "8 (916) 123-45-67" in RU,
//!                                                          // "+1 555-123-0011" abroad
//! ```
//!
//! Rules, in order:
//! 1. Empty, `<unknown>` and the words Asterisk and carriers use for a withheld number
//!    (`anonymous`, `restricted`, `private`, `withheld`, `unavailable`, `unknown`) are
//!    [`Normalized::Withheld`].
//! 2. Digits only, at most [`MAX_EXTENSION_DIGITS`] of them, are an [`Normalized::Extension`].
//! 3. An explicit international number (`+` and 7 to 15 digits, separators ignored) is trusted
//!    as it is, even when the metadata calls it invalid: test ranges such as `+1555…` and
//!    freshly allocated ranges must still reach the directory.
//! 4. Other digit strings are read with the default region's metadata from libphonenumber
//!    (the `phonenumber` crate): the national prefix (`8 916…` in Russia), a country code typed
//!    without `+` (`7916…`), a bare national number (`916…`), or the international dialling
//!    prefix (`810…`, `00…`); the national number must match the region's number pattern.
//!    Anything else is [`Normalized::Other`].
//!
//! What this module is not: it does no lookup, no I/O and keeps no state.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;

/// The longest digit string treated as an internal extension rather than a phone number.
///
/// Six digits covers the extension plans we have seen (3 to 5 digits) while a Russian city
/// number without its area code (7 digits) is not mistaken for an extension.
pub const MAX_EXTENSION_DIGITS: usize = 6;

/// A phone number in E.164, kept as the integer of its digits (the `+` is implied).
///
/// Country codes never start with 0 and E.164 has at most 15 digits, so the integer is unique
/// and fits a `u64`; a directory of a million numbers keys on 8 bytes instead of a string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(u64);

/// The default region numbers are dialled from (ISO 3166 code, e.g. `RU`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region(Id);

/// What a raw caller ID or CRM phone field turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Normalized {
    /// A phone number in E.164.
    E164(E164),
    /// An internal extension (digits only, short).
    Extension(String),
    /// The caller withheld the number, or none was sent.
    Withheld,
    /// Anything else, trimmed: a SIP URI, letters, a number invalid in the default region.
    Other(String),
}

/// Errors of this module: only configuration can be wrong, input numbers never are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The region is not an ISO 3166 code known to the phone number metadata.
    #[error("unknown phone region {0:?}; expected an ISO 3166 code such as RU, KZ, DE or US")]
    UnknownRegion(String),
}

impl E164 {
    /// Parses a number already in E.164 (`+` and 7 to 15 digits, nothing else).
    pub fn parse(text: &str) -> Option<E164> {
        let digits = text.strip_prefix('+')?;
        E164::from_digits(digits)
    }

    /// From the integer of the digits; `None` when it cannot be an E.164 number.
    pub fn from_u64(value: u64) -> Option<E164> {
        (1_000_000..=999_999_999_999_999)
            .contains(&value)
            .then_some(E164(value))
    }

    /// The integer of the digits (`+79161234567` is `79161234567`).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The digits without `+`.
    pub fn digits(self) -> String {
        self.0.to_string()
    }

    fn from_digits(digits: &str) -> Option<E164> {
        if !(7..=15).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return None;
        }
        digits.parse().ok().map(E164)
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164(+{})", self.0)
    }
}

impl Region {
    /// Parses an ISO 3166 alpha-2 code, case-insensitively (`ru`, `RU`).
    pub fn parse(code: &str) -> Result<Region, PhoneError> {
        let upper = code.trim().to_ascii_uppercase();
        Id::from_str(&upper)
            .map(Region)
            .map_err(|_| PhoneError::UnknownRegion(code.to_owned()))
    }

    /// Russia, the default of the example configuration.
    pub fn russia() -> Region {
        Region(Id::RU)
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.0.as_ref())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

impl Normalized {
    /// The E.164 number, if it is one.
    pub fn e164(&self) -> Option<E164> {
        match self {
            Normalized::E164(number) => Some(*number),
            _ => None,
        }
    }
}

/// Normalizes a raw caller ID or CRM phone field; see the module docs for the rules.
pub fn normalize(raw: &str, region: Region) -> Normalized {
    let trimmed = raw.trim();
    if is_withheld(trimmed) {
        return Normalized::Withheld;
    }
    if trimmed.len() <= MAX_EXTENSION_DIGITS && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Normalized::Extension(trimmed.to_owned());
    }
    let compact: String = trimmed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '\u{a0}'))
        .collect();
    if let Some(digits) = compact.strip_prefix('+') {
        if let Some(number) = E164::from_digits(digits) {
            return Normalized::E164(number);
        }
    }
    // libphonenumber accepts letters as keypad digits ("1-800-FLOWERS"); a caller ID with
    // letters is a SIP user or a name, not a number, so only dialable characters go on.
    if compact.is_empty() || compact.len() > 20 || !compact.bytes().all(|b| b.is_ascii_digit()) {
        return Normalized::Other(trimmed.to_owned());
    }
    if let Some(number) = international_to_e164(&compact, region) {
        return Normalized::E164(number);
    }
    if let Some(number) = national_to_e164(&compact, region) {
        return Normalized::E164(number);
    }
    Normalized::Other(trimmed.to_owned())
}

/// Loads the phone number metadata now. The first parse otherwise pays for it (tens of
/// milliseconds in release builds, more in debug ones), which would eat a routing budget.
pub fn warm_up() {
    let _ = normalize("8 (495) 111-22-33", Region::russia());
}

/// Formats a number for people: the national format when it belongs to `region`
/// (`8 (916) 123-45-67`), the international one otherwise (`+1 555-123-0011`), and plain
/// E.164 when the metadata does not know the number.
pub fn format_display(number: E164, region: Region) -> String {
    let Some((meta, national)) = split_country(number) else {
        return number.to_string();
    };
    let national_mode = meta.id() == region.0.as_ref();
    match apply_format(meta, &national, national_mode) {
        Some(text) if national_mode => text,
        Some(text) => format!("+{} {text}", meta.country_code()),
        None => number.to_string(),
    }
}

/// Digits dialled in the region: with the national prefix (`8 916…`), with the country code
/// but no `+` (`7916…`) or bare (`916…`), checked against the region's number patterns.
///
/// Done here rather than by `phonenumber::parse`, which strips the Russian national prefix
/// `8` a second time from numbers whose area code starts with 8 (`8 812…` St Petersburg,
/// `8 800…` toll-free) and so loses a digit (checked with 0.3.10).
fn national_to_e164(digits: &str, region: Region) -> Option<E164> {
    let meta = DATABASE.by_id(region.0.as_ref())?;
    let code = meta.country_code().to_string();
    let general = meta.descriptors().general();
    let mut candidates: Vec<&str> = Vec::with_capacity(3);
    if let Some(prefix) = meta.national_prefix().filter(|p| !p.is_empty()) {
        if let Some(rest) = digits.strip_prefix(prefix) {
            candidates.push(rest);
        }
    }
    if let Some(rest) = digits.strip_prefix(code.as_str()) {
        candidates.push(rest);
    }
    candidates.push(digits);
    candidates
        .into_iter()
        .find(|national| matches_whole(general, national))
        .and_then(|national| E164::from_digits(&format!("{code}{national}")))
}

/// Digits dialled with the region's international prefix (`810` in Russia, `00` in most of
/// Europe): the rest is a full international number.
fn international_to_e164(digits: &str, region: Region) -> Option<E164> {
    let meta = DATABASE.by_id(region.0.as_ref())?;
    let prefix = meta.international_prefix()?.find(digits)?;
    if prefix.start() != 0 || prefix.end() == 0 {
        return None;
    }
    E164::from_digits(&digits[prefix.end()..])
}

/// The region metadata and national significant number of an E.164 number, by the longest
/// country code that fits and whose patterns match.
fn split_country(number: E164) -> Option<(&'static phonenumber::Metadata, String)> {
    let digits = number.digits();
    for len in 1..=3.min(digits.len()) {
        let (code, national) = digits.split_at(len);
        let Ok(code) = code.parse::<u16>() else {
            continue;
        };
        let Some(metas) = DATABASE.by_code(&code) else {
            continue;
        };
        if let Some(meta) = metas
            .iter()
            .find(|m| matches_whole(m.descriptors().general(), national))
        {
            return Some((meta, national.to_owned()));
        }
    }
    None
}

/// The crate's `Descriptor::is_match` anchors only the start; a national number must match
/// the whole pattern.
fn matches_whole(descriptor: &phonenumber::metadata::Descriptor, national: &str) -> bool {
    let lengths = descriptor.possible_length();
    (lengths.is_empty() || lengths.contains(&(national.len() as u16)))
        && descriptor
            .national_number()
            .find(national)
            .is_some_and(|m| m.start() == 0 && m.end() == national.len())
}

fn apply_format(
    meta: &phonenumber::Metadata,
    national: &str,
    national_mode: bool,
) -> Option<String> {
    let formats = if national_mode || meta.international_formats().is_empty() {
        meta.formats()
    } else {
        meta.international_formats()
    };
    let format = formats.iter().find(|f| {
        let leading_ok = f
            .leading_digits()
            .last()
            .is_none_or(|re| re.find(national).is_some_and(|m| m.start() == 0));
        leading_ok
            && f.pattern()
                .find(national)
                .is_some_and(|m| m.start() == 0 && m.end() == national.len())
    })?;
    let mut pattern = format.format().to_owned();
    if national_mode {
        if let Some(rule) = format.national_prefix().filter(|r| !r.is_empty()) {
            // The rule wraps the first group: `$NP ($FG)` is `8 (916)` in Russia.
            let rule = rule
                .replace("$NP", meta.national_prefix().unwrap_or(""))
                .replace("$FG", "${1}");
            pattern = pattern.replacen("$1", &rule, 1);
        }
    }
    Some(
        format
            .pattern()
            .replace(national, pattern.as_str())
            .into_owned(),
    )
}

fn is_withheld(trimmed: &str) -> bool {
    trimmed.is_empty()
        || [
            "<unknown>",
            "anonymous",
            "restricted",
            "private",
            "withheld",
            "unavailable",
            "unknown",
        ]
        .iter()
        .any(|word| trimmed.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, region: &str) -> String {
        match normalize(raw, Region::parse(region).expect("test region is valid")) {
            Normalized::E164(n) => format!("e164 {n}"),
            Normalized::Extension(e) => format!("ext {e}"),
            Normalized::Withheld => "withheld".to_owned(),
            Normalized::Other(o) => format!("other {o}"),
        }
    }

    #[test]
    fn normalizes_numbers_as_data() {
        let cases = [
            ("8 (916) 123-45-67", "RU", "e164 +79161234567"),
            ("+7 916 123 4567", "RU", "e164 +79161234567"),
            ("79161234567", "RU", "e164 +79161234567"),
            ("89161234567", "RU", "e164 +79161234567"),
            ("9161234567", "RU", "e164 +79161234567"),
            ("8 495 111-22-33", "RU", "e164 +74951112233"),
            ("+7 (495) 111-22-33", "KZ", "e164 +74951112233"),
            ("810 49 30 1234567", "RU", "e164 +49301234567"),
            ("+15551230011", "RU", "e164 +15551230011"),
            ("+1 (555) 123-0011", "US", "e164 +15551230011"),
            ("8 (812) 312-45-67", "RU", "e164 +78123124567"),
            ("8 800 555-35-35", "RU", "e164 +78005553535"),
            ("78123124567", "RU", "e164 +78123124567"),
            ("030 1234567", "DE", "e164 +49301234567"),
            ("101", "RU", "ext 101"),
            ("  2001 ", "RU", "ext 2001"),
            ("anonymous", "RU", "withheld"),
            ("Restricted", "RU", "withheld"),
            ("unknown", "RU", "withheld"),
            ("<unknown>", "RU", "withheld"),
            ("", "RU", "withheld"),
            ("sip:alice@example.com", "RU", "other sip:alice@example.com"),
            ("1234567", "RU", "other 1234567"),
            ("+0123456789", "RU", "other +0123456789"),
            ("+1234567890123456", "RU", "other +1234567890123456"),
            ("8-800-FLOWERS", "RU", "other 8-800-FLOWERS"),
        ];
        for (raw, region, want) in cases {
            assert_eq!(check(raw, region), want, "{raw} in {region}");
        }
    }

    #[test]
    fn formats_for_display_by_region() {
        let ru = Region::parse("ru").expect("RU is a region");
        let us = Region::parse("US").expect("US is a region");
        let mobile = E164::parse("+79161234567").expect("valid E.164");
        assert_eq!(format_display(mobile, ru), "8 (916) 123-45-67");
        assert_eq!(format_display(mobile, us), "+7 916 123-45-67");
        let moscow = E164::parse("+74951112233").expect("valid E.164");
        assert_eq!(format_display(moscow, ru), "8 (495) 111-22-33");
        let spb = E164::parse("+78123124567").expect("valid E.164");
        assert_eq!(format_display(spb, ru), "8 (812) 312-45-67");
        let us_number = E164::parse("+12025550123").expect("valid E.164");
        assert_eq!(format_display(us_number, ru), "+1 202-555-0123");
        let test_range = E164::parse("+9991234").expect("valid E.164");
        assert_eq!(format_display(test_range, ru), "+9991234");
    }

    #[test]
    fn e164_keys_round_trip() {
        let number = E164::parse("+79161234567").expect("valid E.164");
        assert_eq!(number.as_u64(), 79_161_234_567);
        assert_eq!(E164::from_u64(79_161_234_567), Some(number));
        assert_eq!(number.to_string(), "+79161234567");
        assert_eq!(E164::parse("79161234567"), None);
        assert_eq!(E164::parse("+7916-123"), None);
        assert_eq!(E164::from_u64(12), None);
    }

    #[test]
    fn regions_parse_or_name_the_bad_code() {
        assert_eq!(Region::parse("ru"), Ok(Region::russia()));
        assert_eq!(Region::russia().to_string(), "RU");
        let err = Region::parse("XX").expect_err("XX is not a region");
        assert!(err.to_string().contains("\"XX\""), "{err}");
    }
}
