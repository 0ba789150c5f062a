//! Where events come from: the live kernel ([`probe`], root), a file made by `tracer record`
//! ([`recording`]), and the sockets that exist when tracing starts ([`snapshot`]); the names
//! of the cgroups events come from ([`cgroups`]).
pub mod cgroups;
pub mod probe;
pub mod recording;
pub mod snapshot;
