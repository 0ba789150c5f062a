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
    DWELL_CHUNK, DWELL_CHUNKS, DWELL_ENTRIES, DWELL_STATES, HOME_TIME_WAIT, LifeSlot, TimewaitSlot,
    dwell_bucket_value,
};

use crate::model::TcpState;

mod timewaits;

pub use timewaits::{TimewaitCounts, read_max_tw_buckets, timewait_slots};

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
    /// The timewaits followed to their end in the kernel, mapped the same way.
    timewaits: memmap2::Mmap,
    timewaits_len: usize,
    /// The last count of home TIME_WAITs ended early, read when one of them ended.
    home_early_seen: u64,
    dwell: PerCpuArray<MapData, [u64; DWELL_CHUNK as usize]>,
    touched: PerCpuArray<MapData, [u64; DWELL_ENTRIES as usize]>,
    counts: PerCpuArray<MapData, u64>,
    /// The bucket counts and per-entry totals as last read (summed over CPUs).
    seen: Vec<u64>,
    touched_seen: Vec<u64>,
}

impl Lives {
    pub fn take(ebpf: &mut Ebpf, len: u32, timewaits_len: u32) -> Result<Lives> {
        let slots = map_slots::<LifeSlot>(ebpf, "LIVES", len)?;
        let timewaits = map_slots::<TimewaitSlot>(ebpf, "TIMEWAITS", timewaits_len)?;
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .with_context(|| format!("{name} map missing"))
        };
        Ok(Lives {
            slots,
            len: len as usize,
            timewaits,
            timewaits_len: timewaits_len as usize,
            home_early_seen: 0,
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
        read_slots::<LifeSlot>(&self.slots, self.len).filter_map(|slot| {
            if slot.cookie == 0 || slot.state == tracer_common::tcp_state::CLOSE {
                return None;
            }
            Some((TcpState::from_kernel(slot.state)?, slot.since_ns, slot.sk))
        })
    }

    /// Lives followed in the kernel so far, and life starts sent one by one because their
    /// slot was taken.
    pub fn counts(&self) -> Result<(u64, u64)> {
        Ok((self.count(0)?, self.count(1)?))
    }

    /// Count `i` of the kernel's LIFE_COUNTS, summed over CPUs.
    fn count(&self, i: u32) -> Result<u64> {
        let per_cpu = self
            .counts
            .get(&i, 0)
            .context("reading the kernel's life counts")?;
        Ok(per_cpu.iter().fold(0u64, |a, &n| a.wrapping_add(n)))
    }

    /// Each timewait followed in the kernel now: its substate and since when. One whose timer
    /// was cancelled is left out: it is ending (killed, or expiring this instant).
    pub fn timewaits_open(&self) -> impl Iterator<Item = (TcpState, u64)> + '_ {
        self.timewaits().filter_map(|s| {
            let open = s.cookie != 0 && s.cancel_ns == 0;
            open.then(|| Some((TcpState::from_kernel(s.substate)?, s.since_ns)))
                .flatten()
        })
    }

    /// Every timewait slot, read as it is now.
    fn timewaits(&self) -> impl Iterator<Item = TimewaitSlot> + '_ {
        read_slots::<TimewaitSlot>(&self.timewaits, self.timewaits_len)
    }

    /// The steps of the kills the kernel had not settled by `now_ns`: call once its
    /// programs run no more (at exit), or they would be counted twice.
    pub fn ended_at_exit(&self, now_ns: u64) -> Vec<crate::model::Step> {
        timewaits::ended_at_exit(self.timewaits(), now_ns)
    }

    /// Home TIME_WAITs ended early since the last call.
    pub fn home_early_since(&mut self) -> Result<u64> {
        let now = self.count(timewaits::HOME_EARLY)?;
        Ok(now.wrapping_sub(std::mem::replace(&mut self.home_early_seen, now)))
    }

    /// Says at debug level what the kernel counted (at exit).
    pub fn log_counts(&self) {
        match self.counts() {
            Ok((followed, taken)) => log::debug!(
                "kernel aggregation: {followed} lives followed in the kernel, {taken} sent one by \
                 one because their slot was taken"
            ),
            Err(e) => log::debug!("{e:#}"),
        }
        match self.timewait_counts() {
            Ok(c) => log::debug!(
                "kernel aggregation: {} timewaits followed in the kernel, {} sent one event at a \
                 time because their bucket was full, {} whose end was never seen",
                c.taken,
                c.bucket_full,
                c.end_not_seen
            ),
            Err(e) => log::debug!("{e:#}"),
        }
    }

    /// The kernel's counts of timewaits.
    pub fn timewait_counts(&self) -> Result<TimewaitCounts> {
        Ok(TimewaitCounts {
            taken: self.count(timewaits::TIMEWAITS_TAKEN)?,
            bucket_full: self.count(timewaits::TIMEWAIT_BUCKET_FULL)?,
            end_not_seen: self.count(timewaits::TIMEWAIT_END_NOT_SEEN)?,
        })
    }
}

/// The `len` slots of a mapping made by [`map_slots`], each read as it is now (the kernel
/// writes them meanwhile: volatile loads, slot by slot).
fn read_slots<'a, T: Copy + 'a>(
    map: &'a memmap2::Mmap,
    len: usize,
) -> impl Iterator<Item = T> + 'a {
    let base = map.as_ptr().cast::<T>();
    // SAFETY: `map_slots` mapped `len` slots of `T`; the slot types are plain data
    // (`LifeSlot`, `TimewaitSlot`), every bit pattern valid.
    (0..len.min(map.len() / size_of::<T>())).map(move |i| unsafe { base.add(i).read_volatile() })
}

/// Maps `len` slots of the BPF_F_MMAPABLE array map `name` read-only.
fn map_slots<T>(ebpf: &mut Ebpf, name: &str, len: u32) -> Result<memmap2::Mmap> {
    let map = ebpf
        .map(name)
        .with_context(|| format!("{name} map missing"))?;
    let aya::maps::Map::Array(data) = map else {
        bail!("{name} is not an array map");
    };
    let bytes = len as usize * size_of::<T>();
    // SAFETY: a read-only shared mapping of a BPF_F_MMAPABLE array of `len` slots that lives
    // as long as this process holds the map; the kernel writes it meanwhile, so it is only
    // read with volatile loads, slot by slot.
    unsafe {
        memmap2::MmapOptions::new()
            .len(bytes)
            .map(data.fd().as_fd().as_raw_fd())
    }
    .with_context(|| format!("mapping the {name} map"))
}

/// What a position of the `DWELL` map counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    State(TcpState),
    /// TIME_WAITs of the tracer's own network namespace, again (for its forecasts).
    HomeTimeWait,
}

/// What position `at` of [`Lives::dwell_since`]'s counts counts, and its duration (`None`
/// past the buckets in use, or for a state number the model does not know).
pub fn bucket_at(at: usize) -> Option<(Counted, u64)> {
    let (entry, i) = (at as u32 / DWELL_CHUNK, at as u32 % DWELL_CHUNK);
    let (histogram, chunk) = (entry / DWELL_CHUNKS, entry % DWELL_CHUNKS);
    let bucket = chunk * DWELL_CHUNK + i;
    if bucket >= tracer_common::life::DWELL_BUCKETS {
        return None;
    }
    let counted = match histogram {
        HOME_TIME_WAIT => Counted::HomeTimeWait,
        h => Counted::State(TcpState::from_kernel(*DWELL_STATES.get(h as usize)?)?),
    };
    Some((counted, dwell_bucket_value(bucket)))
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
        for (state, ns) in [
            (1u8, 5u64),
            (2, 70_000),
            (8, 60_000_000_000),
            (11, 3),
            (6, 7),
        ] {
            let (entry, i) = dwell_entry(state, dwell_bucket(ns)).unwrap();
            let at = (entry * DWELL_CHUNK + i) as usize;
            let (named, value) = bucket_at(at).unwrap();
            let state = TcpState::from_kernel(state).unwrap();
            assert_eq!(named, Counted::State(state));
            assert!(
                (value as f64 - ns as f64).abs() <= ns as f64 * 0.004,
                "{ns} -> {value}"
            );
        }
        let (entry, i) = tracer_common::life::histogram_entry(HOME_TIME_WAIT, 300);
        let at = (entry * DWELL_CHUNK + i) as usize;
        assert_eq!(bucket_at(at).map(|b| b.0), Some(Counted::HomeTimeWait));
        assert_eq!(bucket_at((DWELL_ENTRIES * DWELL_CHUNK) as usize), None);
    }
}
