//! tracer: TCP state-transition tracing with eBPF. The binary is a thin CLI over this library.
//!
//! The modules are layers, and every dependency points down (`tracer/tests/layers.rs` checks it):
//! [`time`] → [`model`] → [`stats`] → [`filter`] → [`source`] (live rings, recordings, snapshots)
//! → [`engine`] (a source driven through the model) → [`view`] → [`service`] (daemon, metrics,
//! doctor) → [`commands`] → [`cli`]. Everything but `source::probe` runs without root.
pub mod cli;
pub mod commands;
pub mod engine;
pub mod error;
pub mod filter;
pub mod model;
pub mod service;
pub mod source;
pub mod stats;
pub mod time;
pub mod view;
