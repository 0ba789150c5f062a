//! Long-lived or composite services over the engine and the views: the control socket of
//! `tracer run` ([`daemon`]), Prometheus metrics ([`metrics`]) and `tracer doctor`'s findings
//! ([`doctor`]).
pub mod daemon;
pub mod doctor;
pub mod metrics;
