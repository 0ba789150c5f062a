//! Recordings: `tracer record -o FILE` writes the raw event stream; `--from FILE` on `run`,
//! `histogram` and `closes` replays it through the same model, statistics and output, without
//! root. Also described, with examples, in `docs/recording-format.md`.
//!
//! # Format, version 1
//!
//! Every integer is little-endian; every field is written and read one by one (never as a
//! memory image of a struct), so the layout does not depend on the compiler or the machine.
//!
//! A 156-byte **header**:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `89 54 52 41 43 45 52 0A` (`"\x89TRACER\n"`) |
//! | 8 | 2 | format version (u16) = 1 |
//! | 10 | 2 | header length (u16) = 156 |
//! | 12 | 4 | flags (u32): bit 0 = TIME_WAIT was followed (`tw_timer_handler` found); bit 1 = the filter also had criteria not stored here (addresses, namespace, owner) |
//! | 16 | 8 | start, CLOCK_BOOTTIME ns (u64): the clock of every event's `ts_ns` |
//! | 24 | 8 | start, CLOCK_REALTIME ns since the Unix epoch (i64), taken with the above |
//! | 32 | 2 | filter: address family (u16; 0 both, 2 IPv4, 10 IPv6) |
//! | 34 | 2 | filter: number of ports (u16, 0..=16; 0 = every port) |
//! | 36 | 32 | filter: 16 ports (u16 each; unused ones 0) |
//! | 68 | 16 | tracer version (UTF-8, zero-padded) |
//! | 84 | 1 | host name length (u8, 0..=64) |
//! | 85 | 64 | host name (UTF-8, zero-padded) |
//! | 149 | 3 | reserved, zero |
//! | 152 | 4 | CRC-32 (IEEE, as zlib) of bytes 0..152 |
//!
//! Then **records**, each framed as tag (u8), payload length (u16), payload, CRC-32 (u32) of
//! the tag, length and payload:
//!
//! | tag | payload | bytes |
//! |---:|---|---:|
//! | 1 EVENT | `ts_ns` u64, `sk` u64, `pid_tgid` u64, `cgroup_id` u64, `netns` u32, `saddr` 16 bytes, `daddr` 16 bytes, `sport` u16, `dport` u16, `family` u16, `kind` u8, `old_state` u8, `new_state` u8, `comm` 16 bytes | 93 |
//! | 2 TICK | recorder's CLOCK_BOOTTIME ns u64, events lost so far u64 (written every second) | 16 |
//! | 3 END | end CLOCK_BOOTTIME ns u64, events lost in all u64, EVENT records written u64 | 24 |
//!
//! Events are in ring-buffer order, exactly as the kernel reported them (`RawEvent` of
//! `tracer-common`, addresses in network byte order, ports in host order; its padding is not
//! stored). END is the last record and nothing follows it. A tag of 0x80 or more is optional:
//! a reader skips one it does not know (after checking its CRC); any other unknown tag, a known
//! tag with another length, a CRC mismatch, a short record, a missing END, an END whose event
//! count differs, or bytes after END is an error reported with the byte offset of the record.
//! A reader refuses a newer format version; a change that old readers would misread gets a new
//! version.
//!
//! A replay uses the recording's times: TICK and END records settle timewaits and drive the
//! periodic summaries as the live clock did, in-progress ages are taken at the END time, and
//! wall-clock times are the start's realtime plus the boot-time offset.
pub mod format;
pub mod reader;
pub mod replay;
pub mod writer;

#[cfg(test)]
mod tests;

pub use format::{FORMAT_VERSION, Header, Record};
pub use reader::{Problem, ReadError, Reader};
pub use replay::Replay;
pub use writer::Writer;
