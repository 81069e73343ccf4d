//! Fake CRMs for tests: in-process axum servers on `127.0.0.1:0` that behave like the real
//! services on the points that break connectors.
//!
//! - [`bitrix24::FakeBitrix24`]: the leaky bucket (2 requests/s drained, blocked above 50,
//!   `QUERY_LIMIT_EXCEEDED`), `expired_token` then a refresh that rotates the refresh token,
//!   `batch` with `$result[…]` references, and the externalCall methods.
//! - [`amocrm::FakeAmoCrm`]: 7 requests/s with 429, 204 on an empty contact search.
//! - [`dynamics::FakeDynamics`]: client-credentials tokens, 429 with `Retry-After`.
//! - [`webhook::FakeWebhookReceiver`]: records signed webhook deliveries.
//! - Every fake has a [`Faults`] switch: answer 5xx, hang, or drop connections.
//!
//! What this is not: a faithful emulation of the products. Each fake keeps just enough state
//! to check, record by record, what a connector sent.

pub mod amocrm;
pub mod bitrix24;
pub mod dynamics;
mod faults;
pub mod webhook;

pub use faults::{Fault, Faults};
