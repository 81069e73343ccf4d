//! The in-memory directory: phone (E.164 as `u64`) → compact customer summary.
//!
//! Layout, chosen so a million customers take about a hundred megabytes and load in a few
//! seconds: one `Vec` of fixed-size entries; every name in one string arena and every phone in
//! one `u64` arena (entries hold offsets); segments, regions, languages, extensions and tag sets
//! interned to `u32` indices; two hash maps with a cheap multiplicative hasher (phone → entry,
//! customer id → entry). A rebuild replaces the whole index; an update appends to the arenas,
//! and the garbage it leaves is dropped at the next rebuild.
//!
//! What it is not: a source of truth (see `storage` and the CRM connectors), nor thread-safe by
//! itself: [`crate::Directory`] wraps it in a lock.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use cti_core::routing::CustomerSummary;
use cti_core::{Extension, Timestamp};

use crate::phone::E164;

/// A customer as loaded from storage or a CRM, before compaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerRecord {
    /// Directory id (storage row id, or a CRM-scoped id mapped to a number by the connector).
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Extension of the responsible manager, resolved from the user.
    pub responsible_extension: Option<String>,
    /// Segment.
    pub segment: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Owes money.
    pub debtor: bool,
    /// Calls are rejected.
    pub blacklisted: bool,
    /// Region.
    pub region: Option<String>,
    /// Preferred language.
    pub language: Option<String>,
    /// Every phone, in E.164.
    pub phones: Vec<E164>,
}

/// Sizes of the index, for logs and the memory benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexStats {
    /// Customers held.
    pub customers: usize,
    /// Phone keys held.
    pub phones: usize,
    /// Bytes of names in the arena (including garbage from updates).
    pub name_bytes: usize,
    /// Distinct interned strings.
    pub interned: usize,
}

/// The compact index. Build with [`Index::insert`], read with [`Index::get`].
#[derive(Debug, Default)]
pub struct Index {
    entries: Vec<Entry>,
    by_phone: HashMap<u64, u32, FastHash>,
    by_id: HashMap<i64, u32, FastHash>,
    names: String,
    phones: Vec<u64>,
    strings: Interner,
    tag_sets: Vec<Box<[u32]>>,
    tag_set_ids: HashMap<Box<[u32]>, u32>,
}

const NONE: u32 = u32::MAX;
const DEBTOR: u8 = 1;
const BLACKLISTED: u8 = 2;

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: i64,
    last_agent_at: i64,
    name_start: u32,
    name_len: u32,
    phones_start: u32,
    responsible: u32,
    segment: u32,
    region: u32,
    language: u32,
    tags: u32,
    last_agent: u32,
    phones_len: u16,
    flags: u8,
}

type FastHash = BuildHasherDefault<MulHasher>;

/// Keys are phone numbers and row ids, already well spread and not attacker-chosen in bulk;
/// one multiply is ten times cheaper than SipHash on the hot path.
#[derive(Default)]
struct MulHasher(u64);

impl Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (value ^ (value >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_i64(&mut self, value: i64) {
        self.write_u64(value as u64);
    }
}

#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    values: Vec<Box<str>>,
}

impl Interner {
    fn intern(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = u32::try_from(self.values.len()).unwrap_or(NONE - 1);
        self.values.push(value.into());
        self.ids.insert(value.into(), id);
        id
    }

    fn opt(&mut self, value: Option<&str>) -> u32 {
        match value {
            Some(v) if !v.is_empty() => self.intern(v),
            _ => NONE,
        }
    }

    fn get(&self, id: u32) -> Option<&str> {
        self.values.get(id as usize).map(|v| &**v)
    }
}

impl Index {
    /// An empty index with room for `customers`.
    pub fn with_capacity(customers: usize) -> Index {
        Index {
            entries: Vec::with_capacity(customers),
            by_phone: HashMap::with_capacity_and_hasher(
                customers + customers / 4,
                FastHash::default(),
            ),
            by_id: HashMap::with_capacity_and_hasher(customers, FastHash::default()),
            names: String::with_capacity(customers * 24),
            phones: Vec::with_capacity(customers + customers / 4),
            ..Index::default()
        }
    }

    /// Inserts or replaces the customer with `record.id`. A phone shared by several customers
    /// resolves to the one inserted first (storage loads in id order, so the oldest).
    /// The last agent of a replaced customer is kept.
    pub fn insert(&mut self, record: &CustomerRecord) {
        let existing = self.by_id.get(&record.id).copied();
        let (last_agent, last_agent_at) = match existing {
            Some(idx) => {
                let old = self.entries[idx as usize];
                self.unlink_phones(idx, &old);
                (old.last_agent, old.last_agent_at)
            }
            None => (NONE, 0),
        };
        let name_start = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        // Names are for display: a pathological one is cut rather than bloating the arena.
        let name = truncate(&record.name, 256);
        self.names.push_str(name);
        let phones_start = u32::try_from(self.phones.len()).unwrap_or(u32::MAX);
        let phones: Vec<u64> = record.phones.iter().take(64).map(|p| p.as_u64()).collect();
        self.phones.extend_from_slice(&phones);
        let mut tag_ids: Vec<u32> = record.tags.iter().map(|t| self.strings.intern(t)).collect();
        tag_ids.sort_unstable();
        tag_ids.dedup();
        let tags = if tag_ids.is_empty() {
            NONE
        } else {
            let key: Box<[u32]> = tag_ids.into_boxed_slice();
            match self.tag_set_ids.get(&key) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(self.tag_sets.len()).unwrap_or(NONE - 1);
                    self.tag_sets.push(key.clone());
                    self.tag_set_ids.insert(key, id);
                    id
                }
            }
        };
        let entry = Entry {
            id: record.id,
            last_agent_at,
            name_start,
            name_len: u32::try_from(name.len()).unwrap_or(0),
            phones_start,
            responsible: self.strings.opt(record.responsible_extension.as_deref()),
            segment: self.strings.opt(record.segment.as_deref()),
            region: self.strings.opt(record.region.as_deref()),
            language: self.strings.opt(record.language.as_deref()),
            tags,
            last_agent,
            phones_len: u16::try_from(phones.len()).unwrap_or(0),
            flags: u8::from(record.debtor) * DEBTOR + u8::from(record.blacklisted) * BLACKLISTED,
        };
        let idx = match existing {
            Some(idx) => {
                self.entries[idx as usize] = entry;
                idx
            }
            None => {
                let idx = u32::try_from(self.entries.len()).unwrap_or(NONE - 1);
                self.entries.push(entry);
                self.by_id.insert(record.id, idx);
                idx
            }
        };
        for phone in phones {
            self.by_phone.entry(phone).or_insert(idx);
        }
    }

    /// Removes a customer; its phones stop resolving.
    pub fn remove(&mut self, id: i64) -> bool {
        let Some(idx) = self.by_id.remove(&id) else {
            return false;
        };
        let old = self.entries[idx as usize];
        self.unlink_phones(idx, &old);
        // The entry stays as garbage (indices of others must not move) until the next rebuild.
        self.entries[idx as usize].phones_len = 0;
        true
    }

    /// The summary of the customer with this phone.
    pub fn get(&self, phone: E164) -> Option<CustomerSummary> {
        let idx = *self.by_phone.get(&phone.as_u64())?;
        Some(self.summary(&self.entries[idx as usize]))
    }

    /// Whether a customer has this phone.
    pub fn contains(&self, phone: E164) -> bool {
        self.by_phone.contains_key(&phone.as_u64())
    }

    /// Records that `extension` talked to the caller with `phone` at `at`; an older call than
    /// the one already recorded changes nothing. Returns whether the phone is known.
    pub fn record_agent(&mut self, phone: E164, extension: &str, at: Timestamp) -> bool {
        let Some(&idx) = self.by_phone.get(&phone.as_u64()) else {
            return false;
        };
        let agent = self.strings.intern(extension);
        let entry = &mut self.entries[idx as usize];
        if entry.last_agent == NONE || entry.last_agent_at <= at.as_micros() {
            entry.last_agent = agent;
            entry.last_agent_at = at.as_micros();
        }
        true
    }

    /// Sizes, for logs and benchmarks.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            customers: self.by_id.len(),
            phones: self.by_phone.len(),
            name_bytes: self.names.len(),
            interned: self.strings.values.len(),
        }
    }

    fn unlink_phones(&mut self, idx: u32, old: &Entry) {
        let start = old.phones_start as usize;
        let end = start + usize::from(old.phones_len);
        for phone in self.phones.get(start..end).unwrap_or(&[]) {
            if self.by_phone.get(phone) == Some(&idx) {
                self.by_phone.remove(phone);
            }
        }
    }

    fn summary(&self, entry: &Entry) -> CustomerSummary {
        let text = |id: u32| self.strings.get(id).map(str::to_owned);
        let start = entry.name_start as usize;
        let name = self
            .names
            .get(start..start + entry.name_len as usize)
            .unwrap_or("")
            .to_owned();
        let tags = match self.tag_sets.get(entry.tags as usize) {
            Some(set) => set.iter().filter_map(|&t| text(t)).collect(),
            None => Vec::new(),
        };
        CustomerSummary {
            id: entry.id.to_string(),
            name,
            responsible: self.strings.get(entry.responsible).map(Extension::from),
            segment: text(entry.segment),
            tags,
            debtor: entry.flags & DEBTOR != 0,
            blacklisted: entry.flags & BLACKLISTED != 0,
            region: text(entry.region),
            language: text(entry.language),
            last_agent: self.strings.get(entry.last_agent).map(|e| {
                (
                    Extension::from(e),
                    Timestamp::from_micros(entry.last_agent_at),
                )
            }),
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(text: &str) -> E164 {
        E164::parse(text).expect("test phone is E.164")
    }

    fn record(id: i64, name: &str, phones: &[&str]) -> CustomerRecord {
        CustomerRecord {
            id,
            name: name.to_owned(),
            responsible_extension: Some("105".into()),
            segment: Some("vip".into()),
            tags: vec!["b".into(), "a".into(), "a".into()],
            debtor: true,
            region: Some("Moscow".into()),
            phones: phones.iter().map(|p| phone(p)).collect(),
            ..CustomerRecord::default()
        }
    }

    #[test]
    fn insert_get_update_remove() {
        let mut index = Index::with_capacity(4);
        index.insert(&record(1, "Иван Петров", &["+79161234567", "+74951112233"]));
        index.insert(&record(2, "Shared line", &["+74951112233"]));
        let got = index.get(phone("+74951112233")).expect("phone is known");
        assert_eq!(
            got.name, "Иван Петров",
            "the first inserted customer owns a shared phone"
        );
        let mut tags = got.tags.clone();
        tags.sort();
        assert_eq!(tags, ["a", "b"], "tags are deduplicated");
        assert!(got.debtor && !got.blacklisted);
        assert_eq!(got.responsible.as_ref().map(Extension::as_str), Some("105"));

        assert!(index.record_agent(phone("+79161234567"), "107", Timestamp::from_secs(100)));
        assert!(index.record_agent(phone("+79161234567"), "108", Timestamp::from_secs(50)));
        let got = index.get(phone("+79161234567")).expect("phone is known");
        assert_eq!(
            got.last_agent,
            Some(("107".into(), Timestamp::from_secs(100)))
        );

        // The update drops the old second phone and keeps the last agent.
        index.insert(&record(1, "Иван Петров-Водкин", &["+79161234567"]));
        let got = index.get(phone("+79161234567")).expect("phone is known");
        assert_eq!(got.name, "Иван Петров-Водкин");
        assert_eq!(
            got.last_agent,
            Some(("107".into(), Timestamp::from_secs(100)))
        );
        assert_eq!(
            index.get(phone("+74951112233")),
            None,
            "shared phone was linked to 1, now gone"
        );

        assert!(index.remove(1));
        assert_eq!(index.get(phone("+79161234567")), None);
        assert!(!index.remove(1));
        assert_eq!(index.stats().customers, 1);
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary() {
        let mut index = Index::default();
        let long = "я".repeat(200);
        index.insert(&record(1, &long, &["+79161234567"]));
        let got = index.get(phone("+79161234567")).expect("phone is known");
        assert_eq!(got.name.chars().count(), 128);
    }
}
