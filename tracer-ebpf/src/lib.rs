//! The eBPF programs are the `tracer` binary target of this crate (src/main.rs); this empty
//! library only lets tracer/build.rs declare a build-dependency on the crate.
#![no_std]
