//! tracer: TCP state-transition tracing with eBPF. The binary is a thin CLI over this library;
//! everything below [`probe`] is pure and testable without root.
pub mod cli;
pub mod commands;
pub mod daemon;
pub mod doctor;
pub mod filter;
pub mod metrics;
pub mod model;
pub mod output;
pub mod probe;
pub mod recording;
pub mod snapshot;
pub mod stats;
