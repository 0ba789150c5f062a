//! `tracer run` as a daemon that answers queries: a Unix control socket (default
//! `/run/tracer/tracer.sock`, mode 0600, [`socket`]) speaking one JSON line each way
//! ([`protocol`]), served from the collect loop ([`server`], [`answer`]) and asked by `tracer
//! histogram` and `tracer closes` ([`client`]), which then answer at once from what the daemon
//! has collected since it started, or in an interval of its history ([`window`]).
pub mod answer;
pub mod client;
pub mod protocol;
pub mod server;
pub mod socket;
pub mod window;

#[cfg(test)]
mod tests;
