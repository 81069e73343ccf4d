//! The customer directory as the router sees it: phone numbers normalized to E.164 and an
//! in-memory cache from a number to a compact customer summary.
//!
//! What it is: [`phone`] (normalization and display formatting, used by every component that
//! receives a phone number) and, built on it, the cache that answers "who is calling" in well
//! under a millisecond for a million customers.
//!
//! What it is not: the system of record. Customers live in `storage` and in the CRMs; this
//! crate holds a copy, refreshed from them, and never writes customers back.

pub mod phone;
