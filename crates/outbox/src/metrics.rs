//! Counters of one connector's deliveries, read by the binary's Prometheus registry, and the
//! latest outbox snapshot (depth, oldest job) refreshed by the sweeper.
//!
//! Labels stay low-cardinality: connector and error kind, never a call or a number.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::connector::ErrorKind;

/// Delivery counters of one connector.
#[derive(Debug, Default)]
pub struct OutboxMetrics {
    /// Jobs delivered.
    pub delivered: AtomicU64,
    /// Failed attempts that will be retried.
    pub retried: AtomicU64,
    /// Jobs moved to the dead letters by the worker (rejected by the remote side).
    pub dead_lettered: AtomicU64,
    /// HTTP requests (or batches) sent.
    pub requests: AtomicU64,
    failures: [AtomicU64; ErrorKind::ALL.len()],
}

impl OutboxMetrics {
    /// Counts one failure of `kind`.
    pub fn failure(&self, kind: ErrorKind) {
        if let Some(idx) = ErrorKind::ALL.iter().position(|k| *k == kind) {
            self.failures[idx].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Failures of `kind` so far.
    pub fn failures(&self, kind: ErrorKind) -> u64 {
        ErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |idx| self.failures[idx].load(Ordering::Relaxed))
    }
}

/// The latest [`storage::OutboxStats`], shared between the sweeper (writer) and metrics (readers).
#[derive(Debug, Clone, Default)]
pub struct StatsSnapshot {
    inner: Arc<Mutex<storage::OutboxStats>>,
}

impl StatsSnapshot {
    /// Replaces the snapshot.
    pub fn set(&self, stats: storage::OutboxStats) {
        if let Ok(mut guard) = self.inner.lock() {
            *guard = stats;
        }
    }

    /// A copy of the snapshot.
    pub fn get(&self) -> storage::OutboxStats {
        self.inner.lock().map(|g| g.clone()).unwrap_or_default()
    }
}
