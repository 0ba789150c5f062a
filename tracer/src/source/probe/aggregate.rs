//! Kernel aggregation ([`tracer_common::life`]): chosen at attach time where the kernel allows
//! it (socket cookies in tracing programs, Linux 5.12+) and the command needs no line per
//! transition; else every transition goes to userspace, as the stderr line says.
//! `TRACER_KERNEL_AGGREGATION=auto|on|off` forces a choice (`on`: fail rather than fall back).
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{Context, Result, bail};
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
};
use tracer_common::life::{
    DWELL_CHUNK, DWELL_CHUNKS, DWELL_ENTRIES, DWELL_STATES, LifeSlot, dwell_bucket_value,
};

use crate::model::TcpState;

/// The environment variable that forces a choice.
pub const ENV: &str = "TRACER_KERNEL_AGGREGATION";

/// Slots for lives followed in the kernel (104 bytes each, 6.5 MiB), at most: a life that
/// finds its slot taken goes the per-transition way.
pub const MAX_SLOTS: u32 = 1 << 16;

/// Slots for a `--max-sockets` cap: a power of two, at most [`MAX_SLOTS`] and at most the
/// cap rounded up, so the cap bounds the kernel's table too.
pub fn slots(max_sockets: usize) -> u32 {
    let cap = u32::try_from(max_sockets).unwrap_or(u32::MAX).max(1);
    cap.checked_next_power_of_two()
        .unwrap_or(MAX_SLOTS)
        .min(MAX_SLOTS)
}

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Auto,
    On,
    Off,
}

impl Choice {
    /// From [`ENV`]: unset or empty is `auto`; anything unknown is an error.
    pub fn from_env() -> Result<Choice> {
        match std::env::var(ENV) {
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "auto" => Ok(Choice::Auto),
                "on" => Ok(Choice::On),
                "off" => Ok(Choice::Off),
                other => bail!("{ENV}={other:?} is not one of auto, on, off"),
            },
            Err(std::env::VarError::NotPresent) => Ok(Choice::Auto),
            Err(e) => bail!("{ENV}: {e}"),
        }
    }
}

/// Whether the aggregating state program was attached.
pub enum Outcome {
    /// The command needs every transition, or it was turned off, or an owner filter is set.
    NotAsked,
    Attached,
    /// The kernel refused it (why): every transition goes to userspace.
    Refused(String),
}

/// The maps of kernel aggregation, once attached.
pub struct Lives {
    /// The slots, mapped read-only: counting the sockets in each state reads memory, no
    /// syscall per slot.
    slots: memmap2::Mmap,
    len: usize,
    dwell: PerCpuArray<MapData, [u64; DWELL_CHUNK as usize]>,
    touched: PerCpuArray<MapData, [u64; DWELL_ENTRIES as usize]>,
    counts: PerCpuArray<MapData, u64>,
    /// The bucket counts and per-entry totals as last read (summed over CPUs).
    seen: Vec<u64>,
    touched_seen: Vec<u64>,
}

impl Lives {
    pub fn take(ebpf: &mut Ebpf, len: u32) -> Result<Lives> {
        let slots = ebpf.map("LIVES").context("LIVES map missing")?;
        let aya::maps::Map::Array(data) = slots else {
            bail!("LIVES is not an array map");
        };
        let bytes = len as usize * size_of::<LifeSlot>();
        // SAFETY: a read-only shared mapping of a BPF_F_MMAPABLE array of `len` LifeSlots
        // that lives as long as this process holds the map; the kernel writes it meanwhile,
        // so it is only read with volatile loads, slot by slot.
        let slots = unsafe {
            memmap2::MmapOptions::new()
                .len(bytes)
                .map(data.fd().as_fd().as_raw_fd())
        }
        .context("mapping the LIVES map")?;
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .with_context(|| format!("{name} map missing"))
        };
        Ok(Lives {
            slots,
            len: len as usize,
            dwell: PerCpuArray::try_from(take(ebpf, "DWELL")?)?,
            touched: PerCpuArray::try_from(take(ebpf, "DWELL_TOUCHED")?)?,
            counts: PerCpuArray::try_from(take(ebpf, "LIFE_COUNTS")?)?,
            seen: vec![0; (DWELL_ENTRIES * DWELL_CHUNK) as usize],
            touched_seen: vec![0; DWELL_ENTRIES as usize],
        })
    }

    /// The durations counted since the last call, as (position, how many) for [`bucket_at`]:
    /// one read of the per-entry totals, then only the entries that changed.
    pub fn dwell_since(&mut self, mut f: impl FnMut(usize, u64)) -> Result<()> {
        let totals = self
            .touched
            .get(&0, 0)
            .context("reading the kernel's dwell-time totals")?;
        let mut sums = [0u64; DWELL_ENTRIES as usize];
        for cpu in totals.iter() {
            for (sum, n) in sums.iter_mut().zip(cpu) {
                *sum = sum.wrapping_add(*n);
            }
        }
        for (entry, (sum, seen)) in sums.iter().zip(&mut self.touched_seen).enumerate() {
            if sum == seen {
                continue;
            }
            *seen = *sum;
            let per_cpu = self
                .dwell
                .get(&(entry as u32), 0)
                .context("reading the kernel's dwell-time histograms")?;
            let at = entry * DWELL_CHUNK as usize;
            let mut now = [0u64; DWELL_CHUNK as usize];
            for chunk in per_cpu.iter() {
                for (n, c) in now.iter_mut().zip(chunk) {
                    *n = n.wrapping_add(*c);
                }
            }
            for (i, (n, was)) in now.iter().zip(&mut self.seen[at..]).enumerate() {
                if n != was {
                    f(at + i, n.wrapping_sub(*was));
                    *was = *n;
                }
            }
        }
        Ok(())
    }

    /// Every life followed now: its state, when it entered it, and its socket's address. A
    /// slot that is closing (its record on the way) is left out.
    pub fn open(&self) -> impl Iterator<Item = (TcpState, u64, u64)> + '_ {
        let base = self.slots.as_ptr().cast::<LifeSlot>();
        (0..self.len).filter_map(move |i| {
            // SAFETY: `i` is within the mapping; LifeSlot is plain data, every bit pattern valid.
            let slot = unsafe { base.add(i).read_volatile() };
            if slot.cookie == 0 || slot.state == tracer_common::tcp_state::CLOSE {
                return None;
            }
            Some((TcpState::from_kernel(slot.state)?, slot.since_ns, slot.sk))
        })
    }

    /// Lives followed in the kernel so far, and life starts sent one by one because their
    /// slot was taken.
    pub fn counts(&self) -> Result<(u64, u64)> {
        let sum = |i: u32| -> Result<u64> {
            let per_cpu = self
                .counts
                .get(&i, 0)
                .context("reading the kernel's life counts")?;
            Ok(per_cpu.iter().fold(0u64, |a, &n| a.saturating_add(n)))
        };
        Ok((sum(0)?, sum(1)?))
    }
}

/// The state and duration of position `at` of [`Lives::dwell`]'s counts (`None` past the
/// buckets in use, or for a state number the model does not know).
pub fn bucket_at(at: usize) -> Option<(TcpState, u64)> {
    let (entry, i) = (at as u32 / DWELL_CHUNK, at as u32 % DWELL_CHUNK);
    let (state, chunk) = (entry / DWELL_CHUNKS, entry % DWELL_CHUNKS);
    let bucket = chunk * DWELL_CHUNK + i;
    if bucket >= tracer_common::life::DWELL_BUCKETS {
        return None;
    }
    let state = TcpState::from_kernel(*DWELL_STATES.get(state as usize)?)?;
    Some((state, dwell_bucket_value(bucket)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::life::{dwell_bucket, dwell_entry};

    #[test]
    fn slots_follow_the_socket_cap_up_to_their_maximum() {
        assert_eq!(slots(4), 4);
        assert_eq!(slots(5), 8);
        assert_eq!(slots(0), 1);
        assert_eq!(slots(1_000_000), MAX_SLOTS);
        assert_eq!(slots(usize::MAX), MAX_SLOTS);
    }

    #[test]
    fn positions_name_the_state_and_bucket_the_kernel_counted() {
        for (state, ns) in [(1u8, 5u64), (2, 70_000), (8, 60_000_000_000), (11, 3)] {
            let (entry, i) = dwell_entry(state, dwell_bucket(ns)).unwrap();
            let at = (entry * DWELL_CHUNK + i) as usize;
            let (named, value) = bucket_at(at).unwrap();
            assert_eq!(named, TcpState::from_kernel(state).unwrap());
            assert!(
                (value as f64 - ns as f64).abs() <= ns as f64 * 0.004,
                "{ns} -> {value}"
            );
        }
        assert_eq!(bucket_at((DWELL_ENTRIES * DWELL_CHUNK) as usize), None);
    }
}
