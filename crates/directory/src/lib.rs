//! The customer directory as the router sees it, and the routing service built on it.
//!
//! What it is: [`phone`] (normalization to E.164 and display formatting, used by every
//! component that receives a phone number); [`cache`] (a compact in-memory index from a number
//! to a customer summary, a million customers in about a hundred megabytes); [`Directory`]
//! (that index behind a lock, with an on-miss [`LookupSource`] under a deadline);
//! [`from_storage`] (loading and refreshing it from `storage`); and [`service`] (the pure
//! `cti_core` router fed by all of this under a hard time budget, plus the decision log).
//!
//! What it is not: the system of record. Customers live in `storage` and in the CRMs; this
//! crate holds a copy, refreshed from them, and never writes customers back.

pub mod cache;
mod directory;
pub mod from_storage;
pub mod phone;
pub mod service;

pub use cache::{CustomerRecord, Index, IndexStats};
pub use directory::{BoxFuture, Directory, LookupError, LookupSource, Resolved};
pub use service::{DecisionLog, RouteQuery, RoutingService, ServiceSettings, SharedAvailability};
