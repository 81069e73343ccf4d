//! The built-in directory connector: customers from Kommutator's own storage, and missed-call
//! callback tasks.
//!
//! Rules:
//! - An inbound call nobody answered (missed, abandoned, voicemail) from a phone number opens a
//!   callback task for the customer's responsible manager; further missed calls from the same
//!   customer (or, for an unknown caller, the same number) bump the open task's attempt count
//!   instead of opening another (storage enforces one open task per customer).
//! - An answered call with that customer, either way, closes their open tasks: they were reached.
//!
//! What it is not: a CRM. It never writes customers, and withheld or internal numbers never
//! produce tasks (there is nobody to call back).

use crate::call::CallDto;
use crate::connector::{
    BoxFuture, Connector, ConnectorError, CrmCustomer, Delivery, ErrorKind, Job,
};
use crate::plan::Step;

/// The connector's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Instance name (outbox connector column), e.g. `directory`.
    pub name: String,
    /// Open callback tasks for missed inbound calls.
    pub callback_tasks: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub struct DirectoryConnector {
    config: Config,
    storage: storage::Storage,
}

/// Builds the connector.
pub fn build(config: Config, storage: storage::Storage) -> DirectoryConnector {
    DirectoryConnector { config, storage }
}

fn storage_error(err: storage::StorageError) -> ConnectorError {
    if err.is_transient() {
        ConnectorError::transient(ErrorKind::Unavailable, err.to_string())
    } else {
        ConnectorError::rejected(err.to_string())
    }
}

impl DirectoryConnector {
    async fn deliver_one(&self, job: &Job) -> Delivery {
        if job.step != Step::CallEnded {
            return Ok(());
        }
        let call = &job.payload.call;
        let Some(phone) = call.customer_e164() else {
            return Ok(());
        };
        let phone = phone.to_string();
        let customers = self
            .storage
            .find_customers_by_phone(&phone)
            .await
            .map_err(storage_error)?;
        let customer = customers.first();
        let now = chrono::Utc::now();
        if call.is_answered() {
            let closed = self
                .storage
                .close_callback_tasks_for(
                    customer.map(|c| c.id),
                    Some(&phone),
                    Some(&storage::CallId::new(call.call_id.clone())),
                    now,
                )
                .await
                .map_err(storage_error)?;
            if !closed.is_empty() {
                tracing::info!(call_id = %call.call_id, tasks = closed.len(), "The customer was reached; callback tasks closed.");
            }
        } else if self.config.callback_tasks && call.is_missed_inbound() {
            let task = storage::NewCallbackTask {
                customer_id: customer.map(|c| c.id),
                phone_e164: phone,
                assignee_user_id: customer.and_then(|c| c.responsible_user_id),
                call_id: Some(storage::CallId::new(call.call_id.clone())),
                due_at: None,
                note: Some(note(call)),
            };
            let opened = self
                .storage
                .open_callback_task(&task, now)
                .await
                .map_err(storage_error)?;
            tracing::info!(call_id = %call.call_id, task = %opened.task.id, created = opened.created, attempts = opened.task.attempts, "Missed call: callback task open.");
        }
        Ok(())
    }
}

fn note(call: &CallDto) -> String {
    match &call.queue {
        Some(queue) => format!("Missed call in queue {queue}"),
        None => "Missed call".to_owned(),
    }
}

impl Connector for DirectoryConnector {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn steps(&self) -> &'static [Step] {
        &[Step::CallEnded]
    }

    fn max_batch(&self) -> usize {
        50
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async move { self.storage.ping().await.map_err(storage_error) })
    }

    fn find_customers(
        &self,
        phone: directory::phone::E164,
    ) -> BoxFuture<'_, Result<Vec<CrmCustomer>, ConnectorError>> {
        Box::pin(async move {
            let rows = self
                .storage
                .find_customers_by_phone(&phone.to_string())
                .await
                .map_err(storage_error)?;
            Ok(rows
                .into_iter()
                .map(|row| CrmCustomer {
                    connector: self.config.name.clone(),
                    entity_type: "customer".to_owned(),
                    entity_id: row.id.to_string(),
                    name: Some(row.name),
                    responsible: row.responsible_user_id.map(|u| u.to_string()),
                })
                .collect())
        })
    }

    fn deliver<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Vec<Delivery>> {
        Box::pin(async move {
            let mut res = Vec::with_capacity(jobs.len());
            for job in jobs {
                res.push(self.deliver_one(job).await);
            }
            res
        })
    }
}
