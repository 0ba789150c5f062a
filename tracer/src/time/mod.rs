//! Time at the bottom of every layer: the kernel's boot clock and the wall clock it maps to
//! ([`clock`]), and durations as people write and read them ([`duration`]).
pub mod clock;
pub mod duration;
