//! The shared, thread-safe directory: the compact [`Index`] behind a lock, plus an on-miss
//! lookup through a [`LookupSource`] under a deadline.
//!
//! Reads take a read lock for the few hundred nanoseconds a hash probe and a summary copy
//! need; a full reload builds a new index without the lock and swaps it in.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use cti_core::routing::CustomerSummary;
use cti_core::Timestamp;

use crate::cache::{CustomerRecord, Index, IndexStats};
use crate::phone::E164;

/// A boxed future, so the trait stays object-safe without an extra crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a number missing from the cache is looked up: storage, or a CRM connector.
pub trait LookupSource: Send + Sync {
    /// The customer with this phone, `None` when there is none. The caller applies the
    /// deadline by dropping the future; implementations need no timeout of their own.
    fn lookup(&self, phone: E164) -> BoxFuture<'_, Result<Option<CustomerRecord>, LookupError>>;
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Try again later (network, rate limit, database busy).
    #[error("lookup failed, may succeed later: {0}")]
    Transient(String),
    /// The source refused (bad credentials, bad request).
    #[error("lookup rejected: {0}")]
    Rejected(String),
}

/// What [`Directory::resolve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A customer, from the cache or the source.
    Found(CustomerSummary),
    /// Nobody has this number (the cache is authoritative when there is no source, or the
    /// source said so).
    NotFound,
    /// The source did not answer before the deadline.
    TimedOut,
    /// The source failed.
    Failed(String),
}

/// The directory shared by the FastAGI server, the HTTP route endpoint and the refresh task.
pub struct Directory {
    index: RwLock<Index>,
    source: Option<Arc<dyn LookupSource>>,
    // Numbers the source said nobody has, and when: an unknown caller who calls every minute
    // must not cost a CRM request each time.
    negative: Mutex<HashMap<u64, tokio::time::Instant>>,
    negative_ttl: Duration,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("stats", &self.stats())
            .field("has_source", &self.source.is_some())
            .finish()
    }
}

impl Default for Directory {
    fn default() -> Self {
        Directory::new(None)
    }
}

impl Directory {
    /// A directory with an empty index and an optional on-miss source.
    pub fn new(source: Option<Arc<dyn LookupSource>>) -> Directory {
        Directory {
            index: RwLock::new(Index::default()),
            source,
            negative: Mutex::new(HashMap::new()),
            negative_ttl: Duration::from_secs(600),
        }
    }

    /// Replaces the whole index (a full reload).
    pub fn replace(&self, index: Index) {
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = index;
        self.negative
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Inserts or updates one customer (incremental refresh, a CRM webhook).
    pub fn upsert(&self, record: &CustomerRecord) {
        {
            let mut negative = self.negative.lock().unwrap_or_else(PoisonError::into_inner);
            for phone in &record.phones {
                negative.remove(&phone.as_u64());
            }
        }
        self.index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(record);
    }

    /// Removes one customer.
    pub fn remove(&self, id: i64) -> bool {
        self.index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// The cached summary, without asking the source.
    pub fn get_cached(&self, phone: E164) -> Option<CustomerSummary> {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(phone)
    }

    /// Records the agent who talked to the caller (from a finished call).
    pub fn record_agent(&self, phone: E164, extension: &str, at: Timestamp) -> bool {
        self.index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .record_agent(phone, extension, at)
    }

    /// Sizes of the index.
    pub fn stats(&self) -> IndexStats {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .stats()
    }

    /// The customer with this phone: from the cache, else from the source before `deadline`.
    /// A found customer is added to the cache.
    pub async fn resolve(&self, phone: E164, deadline: tokio::time::Instant) -> Resolved {
        if let Some(summary) = self.get_cached(phone) {
            return Resolved::Found(summary);
        }
        let Some(source) = &self.source else {
            return Resolved::NotFound;
        };
        let now = tokio::time::Instant::now();
        {
            let mut negative = self.negative.lock().unwrap_or_else(PoisonError::into_inner);
            match negative.get(&phone.as_u64()) {
                Some(&at) if now.duration_since(at) < self.negative_ttl => {
                    return Resolved::NotFound
                }
                Some(_) => {
                    negative.remove(&phone.as_u64());
                }
                None => {}
            }
        }
        match tokio::time::timeout_at(deadline, source.lookup(phone)).await {
            Err(_) => Resolved::TimedOut,
            Ok(Err(e)) => Resolved::Failed(e.to_string()),
            Ok(Ok(None)) => {
                let mut negative = self.negative.lock().unwrap_or_else(PoisonError::into_inner);
                // Bounded: a flood of random numbers must not grow memory without limit.
                if negative.len() >= 100_000 {
                    negative.clear();
                }
                negative.insert(phone.as_u64(), tokio::time::Instant::now());
                Resolved::NotFound
            }
            Ok(Ok(Some(mut record))) => {
                if !record.phones.contains(&phone) {
                    record.phones.push(phone);
                }
                self.upsert(&record);
                match self.get_cached(phone) {
                    Some(summary) => Resolved::Found(summary),
                    None => Resolved::NotFound,
                }
            }
        }
    }
}
