//! Asterisk Manager Interface (AMI) adapter: the wire codec, the client that keeps a
//! session alive, and the translation of AMI frames into the core's `PbxEvent`s.
//!
//! This crate translates; it decides nothing about calls. The call tracker lives in
//! `cti-core`.

pub mod client;
pub mod codec;
pub mod translate;
