//! The event rings, read together and handed on in time order. CPU n writes ring
//! `n & (rings - 1)`: one ring per CPU up to [`MAX_RINGS`], so CPUs do not contend for one
//! ring's lock and positions. Each ring is in the order its CPU reserved; across rings, an
//! event is handed on only once it is older than [`REORDER_NS`], so an event another CPU is
//! still committing cannot arrive after a later one has been handed on.
use std::{os::fd::AsRawFd, task::Poll};

use anyhow::{Context, Result, anyhow};
use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use tokio::io::{Interest, unix::AsyncFd};
use tracer_common::{MAX_RINGS, RawEvent};

use crate::time::clock::boot_ns;

/// How long events are held for events of other CPUs to catch up. An event's time is taken
/// a few hundred nanoseconds before its ring entry is committed; a vCPU paused by its
/// hypervisor in between can stretch that to milliseconds. Live output is this much later.
pub const REORDER_NS: u64 = 10_000_000;

/// The smallest ring the kernel takes (a power of two of at least a page).
const PAGE: u32 = 4096;

/// How many rings are in use and the size of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    rings: usize,
    bytes: u32,
}

impl Layout {
    /// `total_bytes` (a power of two) shared by one ring per online CPU of this host (a CPU
    /// brought online later shares a ring: the kernel side masks the CPU number).
    pub fn for_host(total_bytes: u32) -> Result<Layout> {
        let cpus = aya::util::online_cpus().map_err(|(path, e)| anyhow!("reading {path}: {e}"))?;
        Ok(Layout::new(cpus.len(), total_bytes))
    }

    fn new(cpus: usize, total_bytes: u32) -> Layout {
        let rings = cpus.next_power_of_two().clamp(1, MAX_RINGS);
        let share = total_bytes / rings as u32;
        let bytes = match share.checked_ilog2() {
            Some(log) if share >= PAGE => 1 << log,
            _ => PAGE,
        };
        Layout { rings, bytes }
    }

    /// The kernel side's `RING_MASK`.
    pub fn mask(&self) -> u32 {
        self.rings as u32 - 1
    }

    /// (map name, bytes) of every ring in the object; those not in use get a page.
    pub fn sizes(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        (0..MAX_RINGS).map(|i| (name(i), if i < self.rings { self.bytes } else { PAGE }))
    }
}

/// The rings' map names in the object.
const NAMES: [&str; MAX_RINGS] = [
    "EVENTS0", "EVENTS1", "EVENTS2", "EVENTS3", "EVENTS4", "EVENTS5", "EVENTS6", "EVENTS7",
];

fn name(ring: usize) -> &'static str {
    NAMES[ring % MAX_RINGS]
}

/// Newtype so a ring can live in an `AsyncFd`.
struct RingFd(RingBuf<MapData>);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

pub struct Rings {
    rings: Vec<AsyncFd<RingFd>>,
    /// Events read but not handed on yet (younger than the horizon), in time order after
    /// each release.
    held: Vec<RawEvent>,
}

impl Rings {
    /// Takes the rings in use out of the loaded object.
    pub fn take(ebpf: &mut Ebpf, layout: &Layout) -> Result<Rings> {
        let rings = (0..layout.rings)
            .map(|i| {
                let map = ebpf
                    .take_map(name(i))
                    .ok_or_else(|| anyhow!("{} map missing", name(i)))?;
                let ring = RingFd(RingBuf::try_from(map)?);
                // SAFETY: the ring buffer map owns its fd and is owned by the AsyncFd, so the
                // fd stays open and the same for the AsyncFd's whole life.
                unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                    .map_err(std::io::Error::from)
                    .with_context(|| format!("polling ring buffer {}", name(i)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Rings {
            rings,
            held: Vec::new(),
        })
    }

    /// Waits until a ring wakes the reader (a batch is queued), then reads every ring and
    /// appends to `out` what is older than the horizon.
    pub async fn read(&mut self, out: &mut Vec<RawEvent>) -> Result<()> {
        let (rings, held) = (&mut self.rings, &mut self.held);
        std::future::poll_fn(|cx| {
            let mut woken = false;
            for ring in rings.iter_mut() {
                match ring.poll_read_ready_mut(cx) {
                    Poll::Ready(Ok(mut guard)) => {
                        read_ring(guard.get_inner_mut(), held);
                        guard.clear_ready();
                        woken = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if woken {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
        .context("waiting for the ring buffers")?;
        self.drain(out, false);
        Ok(())
    }

    /// How long after an event it is surely handed on by [`Rings::drain`].
    pub fn reorder_delay(&self) -> std::time::Duration {
        match self.rings.len() {
            1 => std::time::Duration::ZERO,
            _ => std::time::Duration::from_nanos(REORDER_NS),
        }
    }

    /// Reads every ring without waiting and appends to `out` what is older than the horizon,
    /// or with `everything`, all that was read (the last read before exit).
    pub fn drain(&mut self, out: &mut Vec<RawEvent>, everything: bool) {
        for ring in &mut self.rings {
            read_ring(ring.get_mut(), &mut self.held);
        }
        let horizon = match everything || self.rings.len() == 1 {
            // One ring is in order already.
            true => u64::MAX,
            false => boot_ns().saturating_sub(REORDER_NS),
        };
        release(&mut self.held, horizon, out);
    }
}

/// Moves the events of `held` up to `horizon` into `out`, oldest first.
fn release(held: &mut Vec<RawEvent>, horizon: u64, out: &mut Vec<RawEvent>) {
    // Stable, and linear on what it is here: sorted runs, one per ring.
    held.sort_by_key(|e| e.ts_ns);
    let due = held.partition_point(|e| e.ts_ns <= horizon);
    out.extend(held.drain(..due));
}

fn read_ring(ring: &mut RingFd, out: &mut Vec<RawEvent>) {
    while let Some(item) = ring.0.next() {
        if item.len() >= size_of::<RawEvent>() {
            // SAFETY: the kernel wrote a whole RawEvent (length checked); read_unaligned makes
            // no alignment assumption and RawEvent is plain data.
            out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<RawEvent>()) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ring_per_cpu_up_to_the_maximum_sharing_the_bytes() {
        let mib = 1024 * 1024;
        assert_eq!(
            Layout::new(1, 16 * mib),
            Layout {
                rings: 1,
                bytes: 16 * mib
            }
        );
        assert_eq!(
            Layout::new(2, 16 * mib),
            Layout {
                rings: 2,
                bytes: 8 * mib
            }
        );
        // 3 CPUs: 4 rings (CPU ids are masked); 64 CPUs share 8.
        assert_eq!(
            Layout::new(3, 16 * mib),
            Layout {
                rings: 4,
                bytes: 4 * mib
            }
        );
        assert_eq!(
            Layout::new(64, 16 * mib),
            Layout {
                rings: 8,
                bytes: 2 * mib
            }
        );
        // Never below a page, whatever the total.
        assert_eq!(
            Layout::new(8, 4096),
            Layout {
                rings: 8,
                bytes: 4096
            }
        );
        let layout = Layout::new(2, 16 * mib);
        assert_eq!(layout.mask(), 1);
        let sizes: Vec<_> = layout.sizes().collect();
        assert_eq!(sizes.len(), MAX_RINGS);
        assert_eq!(sizes[1], ("EVENTS1", 8 * mib));
        assert_eq!(sizes[2], ("EVENTS2", 4096));
    }

    fn at(ts_ns: u64) -> RawEvent {
        RawEvent {
            ts_ns,
            ..RawEvent::default()
        }
    }

    #[test]
    fn events_are_handed_on_in_time_order_up_to_the_horizon() {
        // Two rings' batches, each in order, interleaved in time.
        let mut held = vec![at(10), at(30), at(50), at(20), at(40), at(60)];
        let mut out = Vec::new();
        release(&mut held, 45, &mut out);
        let times = |v: &[RawEvent]| v.iter().map(|e| e.ts_ns).collect::<Vec<_>>();
        assert_eq!(times(&out), [10, 20, 30, 40]);
        assert_eq!(times(&held), [50, 60]);
        // A late event of an earlier time still comes before those held.
        held.push(at(55));
        release(&mut held, u64::MAX, &mut out);
        assert_eq!(times(&out), [10, 20, 30, 40, 50, 55, 60]);
        assert!(held.is_empty());
    }
}
