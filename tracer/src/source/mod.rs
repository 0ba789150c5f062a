//! Where events come from: the live kernel ([`probe`], root), a file made by `tracer record`
//! ([`recording`]), and the sockets that exist when tracing starts ([`snapshot`]).
pub mod probe;
pub mod recording;
pub mod snapshot;
