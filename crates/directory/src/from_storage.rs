//! The storage-backed side of the directory: a full load in keyset pages, warm-up of the last
//! agent per customer from recent calls, the on-miss [`LookupSource`] and the refresh task.
//!
//! Storage has no "changed since" query yet, so the periodic refresh is a full reload built
//! off-lock and swapped in; CRM connectors push single changes through
//! [`crate::Directory::upsert`] in between.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use storage::{CallFilter, CustomerRow, Storage, StorageError, UserId};

use crate::cache::{CustomerRecord, Index};
use crate::directory::{BoxFuture, Directory, LookupError, LookupSource};
use crate::phone::E164;

/// Extensions of users, to turn a customer's responsible user into the extension to dial.
#[derive(Debug, Clone, Default)]
pub struct UserExtensions(HashMap<i64, String>);

impl UserExtensions {
    /// From storage: each enabled user's first (lowest) extension.
    pub async fn load(storage: &Storage) -> Result<UserExtensions, StorageError> {
        let users = storage.list_users().await?;
        Ok(UserExtensions(
            users
                .into_iter()
                .filter(|u| !u.disabled)
                .filter_map(|u| u.extensions.first().cloned().map(|e| (u.id.0, e)))
                .collect(),
        ))
    }

    /// Every extension, for the simple agent availability.
    pub fn extensions(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }

    fn of(&self, user: Option<UserId>) -> Option<String> {
        user.and_then(|u| self.0.get(&u.0).cloned())
    }
}

/// Converts a stored customer; phones that are not E.164 are skipped.
pub fn record_from_row(row: &CustomerRow, users: &UserExtensions) -> CustomerRecord {
    CustomerRecord {
        id: row.id.0,
        name: row.name.clone(),
        responsible_extension: users.of(row.responsible_user_id),
        segment: row.segment.clone(),
        tags: row.tags.clone(),
        debtor: row.debtor,
        blacklisted: row.blacklisted,
        region: row.region.clone(),
        language: None,
        phones: row
            .phones
            .iter()
            .filter_map(|p| E164::parse(&p.phone_e164))
            .collect(),
    }
}

/// Loads every customer in pages of `page_size`, ordered by id.
pub async fn load_index(
    storage: &Storage,
    users: &UserExtensions,
    page_size: u32,
) -> Result<Index, StorageError> {
    let total = storage.count_customers().await.unwrap_or(0);
    let mut index = Index::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut after = None;
    loop {
        let page = storage.list_customers_page(after, page_size.max(1)).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for row in &page {
            index.insert(&record_from_row(row, users));
        }
        if page.len() < page_size as usize {
            break;
        }
    }
    Ok(index)
}

/// Sets each customer's last agent from answered calls since `since` (newest first, so the
/// first call seen per number wins). Returns the number of calls read.
pub async fn warm_last_agents(
    storage: &Storage,
    index: &mut Index,
    since: chrono::DateTime<chrono::Utc>,
    max_calls: u64,
) -> Result<u64, StorageError> {
    let mut filter = CallFilter {
        from: Some(since),
        limit: 1000,
        ..CallFilter::default()
    };
    let mut n_read = 0;
    loop {
        let page = storage.list_calls(&filter).await?;
        for row in &page.calls {
            n_read += 1;
            let call = &row.call;
            let (Some(number), Some(agent)) = (&call.customer_number, &call.answered_by) else {
                continue;
            };
            if let Some(phone) = E164::parse(number) {
                let at = cti_core::Timestamp::from_micros(storage::to_micros(call.started_at));
                index.record_agent(phone, agent, at);
            }
        }
        match page.next {
            Some(next) if n_read < max_calls => filter.after = Some(next),
            _ => break,
        }
    }
    Ok(n_read)
}

/// On-miss lookup in storage (customers added since the last load).
#[derive(Debug, Clone)]
pub struct StorageSource {
    storage: Storage,
    users: Arc<UserExtensions>,
}

impl StorageSource {
    /// A source over `storage`, resolving responsible users with `users`.
    pub fn new(storage: Storage, users: Arc<UserExtensions>) -> StorageSource {
        StorageSource { storage, users }
    }
}

impl LookupSource for StorageSource {
    fn lookup(&self, phone: E164) -> BoxFuture<'_, Result<Option<CustomerRecord>, LookupError>> {
        Box::pin(async move {
            let rows = self
                .storage
                .find_customers_by_phone(&phone.to_string())
                .await
                .map_err(|e| LookupError::Transient(e.to_string()))?;
            Ok(rows.first().map(|row| record_from_row(row, &self.users)))
        })
    }
}

/// Loads the directory now and again every `interval` until `shutdown` turns true.
/// A failed load keeps the previous index and is retried at the next tick.
pub async fn refresh_task(
    directory: Arc<Directory>,
    storage: Storage,
    interval: Duration,
    last_agent_days: u32,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let started = std::time::Instant::now();
        match full_load(&storage, last_agent_days).await {
            Ok(index) => {
                let stats = index.stats();
                directory.replace(index);
                tracing::info!(
                    customers = stats.customers,
                    phones = stats.phones,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "Directory cache loaded."
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "Directory cache load failed; keeping the previous one.")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// One full load: users, customers, last agents of the last `last_agent_days` days.
pub async fn full_load(storage: &Storage, last_agent_days: u32) -> Result<Index, StorageError> {
    let users = UserExtensions::load(storage).await?;
    let mut index = load_index(storage, &users, 500).await?;
    let since = chrono::Utc::now() - chrono::Duration::days(i64::from(last_agent_days));
    warm_last_agents(storage, &mut index, since, 1_000_000).await?;
    Ok(index)
}
