//! Folding one call into another when the tracker learns that two Linkedid families are one
//! customer call (a bridge merge or an attended transfer across families): the absorbed call's
//! timeline moves to the survivor and the absorbed row disappears, so reports count one call.

use crate::{in_tx, CallId, Storage, StorageError};

impl Storage {
    /// Moves `absorbed`'s timeline events to `survivor` and deletes `absorbed` (with its agent
    /// rows). The survivor's agent list and snapshot are rewritten by its next write. Merging an
    /// absorbed call that is not stored (or already merged) is a no-op, so a retry is safe; a
    /// survivor that is not stored is [`StorageError::NotFound`].
    pub async fn merge_calls(
        &self,
        absorbed: &CallId,
        survivor: &CallId,
    ) -> Result<(), StorageError> {
        if absorbed == survivor {
            return Ok(());
        }
        in_tx!(self, tx => {
            let survivor_exists: Option<String> = sqlx::query_scalar("SELECT id FROM calls WHERE id = $1")
                .bind(survivor.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            // The writer stores a call's first snapshot before any merge that names it, so a
            // missing survivor means there is nothing consistent to merge into: keep both.
            if survivor_exists.is_none() {
                return Err(StorageError::not_found("the surviving call of a merge"));
            }
            sqlx::query(
                "INSERT INTO call_events (call_id, seq, at, kind, data) \
                 SELECT $1, seq, at, kind, data FROM call_events WHERE call_id = $2 \
                 ON CONFLICT (call_id, seq) DO NOTHING",
            )
            .bind(survivor.as_str())
            .bind(absorbed.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM call_events WHERE call_id = $1")
                .bind(absorbed.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM call_agents WHERE call_id = $1")
                .bind(absorbed.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM calls WHERE id = $1")
                .bind(absorbed.as_str())
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }
}
