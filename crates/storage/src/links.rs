//! Calls a CRM started (click-to-call), linked to the CRM's own call id.
//!
//! Bitrix24's `ONEXTERNALCALLSTART` comes with a `CALL_ID` the CRM has already registered.
//! Kommutator chooses the PBX channel id before it originates (so the tracked call will have
//! that id) and stores the pair *before* the originate: the connector finishes the CRM's call
//! instead of registering a second one, whether it runs in this process or after a restart.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::row::RowExt;
use crate::types::to_micros;
use crate::{on_pool, Storage, StorageError};

/// Ids per lookup query (bound parameters stay far below both databases' limits).
const LOOKUP_CHUNK: usize = 200;

impl Storage {
    /// Links Kommutator's `call_id` to the CRM's `crm_call_id` for `connector`. Returns false
    /// (and changes nothing) when either id is already linked for that connector: a repeated
    /// CRM event, which must not place a second call.
    pub async fn link_crm_call(
        &self,
        connector: &str,
        call_id: &str,
        crm_call_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO crm_call_links (connector, call_id, crm_call_id, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(connector)
            .bind(call_id)
            .bind(crm_call_id)
            .bind(to_micros(at))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Forgets links made before `cutoff`; returns how many. The caller keeps them far longer
    /// than a call lasts and than a dead-lettered finish may wait for a manual retry.
    pub async fn forget_crm_call_links_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query("DELETE FROM crm_call_links WHERE created_at < $1")
                .bind(to_micros(cutoff))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected)
    }

    /// The CRM call ids linked to these calls for `connector` (calls without a link are absent).
    pub async fn crm_call_links(
        &self,
        connector: &str,
        call_ids: &[&str],
    ) -> Result<HashMap<String, String>, StorageError> {
        let mut links = HashMap::new();
        for chunk in call_ids.chunks(LOOKUP_CHUNK) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT call_id, crm_call_id FROM crm_call_links \
                 WHERE connector = $1 AND call_id IN ({})",
                placeholders.join(", ")
            );
            on_pool!(self, pool => {
                let mut query = sqlx::query(&sql).bind(connector);
                for id in chunk {
                    query = query.bind(*id);
                }
                for row in query.fetch_all(pool).await? {
                    links.insert(row.text("call_id")?, row.text("crm_call_id")?);
                }
            });
        }
        Ok(links)
    }
}
