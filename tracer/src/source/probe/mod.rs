//! Loads and attaches the eBPF programs and reads their ring buffer. The only code that needs
//! root; everything downstream consumes plain [`RawEvent`]s.
pub mod aggregate;
mod floor;
mod lost;
mod offsets;
mod privilege;
mod requests;
mod rings;
pub mod timewait;

use anyhow::{Context, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray},
    programs::BtfTracePoint,
};
use tracer_common::{
    FilterConfig, ListenerKey, RawEvent, SockTuple, addr_words, follow_maps as fm,
};

pub use offsets::{Member, kernel_offsets, member};
pub use privilege::check_can_trace;

/// Programs always attached, each named after its tracepoint (tp_btf: no tracefs needed). The
/// TIME_WAIT hooks are chosen by [`timewait::attach`], the state program by [`Detail`].
const TRACEPOINTS: [&str; 2] = ["tcp_send_reset", "tcp_receive_reset"];
const STATE: &str = "inet_sock_set_state";
const AGGREGATE_STATE: &str = "aggregate_inet_sock_set_state";

/// What the command needs from the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Every transition (a line or a record each): no kernel aggregation.
    Transitions,
    /// Durations, ends and sockets open: kernel aggregation where the kernel allows it.
    Lives,
}

/// Default ring buffer size, all rings together: 16 MiB holds ~120k events, several seconds
/// of a very busy host.
pub const DEFAULT_RING_BYTES: u32 = 16 * 1024 * 1024;

/// Attached programs; detached when dropped (nothing is pinned, nothing outlives the process).
pub struct Probe {
    ebpf: Ebpf,
    rings: rings::Rings,
    lost: PerCpuArray<MapData, u64>,
    /// The programs' own messages (aya-log: rare paths only), printed through `log`.
    messages: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    /// False when no TIME_WAIT path could be attached: TIME_WAIT is then not followed.
    pub timewait_supported: bool,
    /// The hooks that follow TIME_WAIT (fentry, timer or none, and why).
    pub timewait: timewait::Path,
    /// Kernel aggregation's maps, when it was chosen.
    pub lives: Option<aggregate::Lives>,
}

/// Address of kernel function `name` from /proc/kallsyms, if visible.
fn kallsyms(name: &str) -> Option<u64> {
    let symbols = std::fs::read_to_string("/proc/kallsyms").ok()?;
    symbols.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let addr = parts.next()?;
        let _kind = parts.next()?;
        (parts.next()? == name)
            .then(|| u64::from_str_radix(addr, 16).ok())
            .flatten()
            .filter(|&a| a != 0)
    })
}

/// The reset programs, each attached to the tracepoint it is named after, and the state
/// program: the aggregating one when `aggregate` and the kernel takes it (else the reason, to
/// be said on stderr once everything is attached), or an error with [`aggregate::Choice::On`].
fn attach_tracepoints(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    aggregate: Option<aggregate::Choice>,
) -> Result<aggregate::Outcome> {
    for name in TRACEPOINTS {
        attach_btf_tracepoint(ebpf, btf, name, name)?;
    }
    let Some(choice) = aggregate else {
        attach_btf_tracepoint(ebpf, btf, STATE, STATE)?;
        return Ok(aggregate::Outcome::NotAsked);
    };
    let program: &mut BtfTracePoint = program(ebpf, AGGREGATE_STATE)?.try_into()?;
    match program.load(STATE, btf) {
        Ok(()) => {
            program
                .attach()
                .with_context(|| format!("attaching {AGGREGATE_STATE} to tracepoint {STATE}"))?;
            Ok(aggregate::Outcome::Attached)
        }
        Err(e) => {
            let why = timewait::refusal(e).context(format!("loading {AGGREGATE_STATE}"));
            match choice {
                aggregate::Choice::On => Err(why.context(format!("{}=on", aggregate::ENV))),
                _ => Ok(aggregate::Outcome::Refused(format!("{why:#}"))),
            }
        }
    }
}

/// Program `name` of the loaded object.
fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("eBPF program {name} missing from the object"))
}

/// Loads program `name` of the object for tp_btf `tracepoint` and attaches it.
fn attach_btf_tracepoint(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    name: &str,
    tracepoint: &str,
) -> Result<()> {
    let program: &mut BtfTracePoint = program(ebpf, name)?.try_into()?;
    program
        .load(tracepoint, btf)
        .with_context(|| format!("loading the {name} program"))?;
    program
        .attach()
        .with_context(|| format!("attaching {name} to tracepoint {tracepoint}"))?;
    Ok(())
}

/// What attaching needs to know of the running kernel and host, read once (a refused kernel
/// aggregation loads the programs a second time).
struct Host {
    choice: timewait::Choice,
    /// `net.ipv4.tcp_max_tw_buckets` of this namespace: what sizes the kernel's timewait slots.
    max_tw_buckets: u64,
    /// This process's network namespace (inode number).
    home_netns: u32,
    offsets: tracer_common::KernelOffsets,
    kernel: timewait::Kernel,
    btf: aya::Btf,
    layout: rings::Layout,
}

impl Host {
    fn read(ring_bytes: u32) -> Result<Host> {
        let btf_rs = btf_rs::Btf::from_file(privilege::VMLINUX_BTF)
            .map_err(|e| anyhow!("{e}"))
            .context("reading kernel BTF")?;
        let offsets = kernel_offsets(&btf_rs).context("reading struct offsets from kernel BTF")?;
        Ok(Host {
            choice: timewait::Choice::from_env()?,
            max_tw_buckets: aggregate::read_max_tw_buckets(),
            // The namespace the forecasts measure; 0 when unreadable (then none is home).
            home_netns: crate::source::snapshot::current_netns(),
            offsets,
            kernel: timewait::Kernel {
                hashdance: offsets::has_function(&btf_rs, "inet_twsk_hashdance_schedule"),
                tw_timer_handler: kallsyms("tw_timer_handler"),
                reqsk_timer_handler: kallsyms("reqsk_timer_handler"),
            },
            btf: aya::Btf::from_sys_fs().context("parsing kernel BTF")?,
            layout: rings::Layout::for_host(ring_bytes)?,
        })
    }
}

impl Probe {
    /// Checks privileges, reads offsets from BTF, loads and attaches every program, with the
    /// TIME_WAIT path chosen by [`timewait::HOOKS_ENV`] (default: fentry, else the timer
    /// hooks, else none), which it names on stderr.
    pub fn attach(filter: &FilterConfig, ring_bytes: u32, detail: Detail) -> Result<Probe> {
        check_can_trace()?;
        let aggregation = aggregate::Choice::from_env()?;
        // Owner filters decide per event in the kernel (filter.rs): not with aggregation.
        let aggregate = (detail == Detail::Lives
            && aggregation != aggregate::Choice::Off
            && filter.owner_match == 0
            && !floor::requested())
        .then_some(aggregation);
        let host = Host::read(ring_bytes)?;
        match Probe::attach_once(filter, &host, aggregate)? {
            Ok(probe) => Ok(probe),
            // Loaded again without it: its maps then take no memory, its hooks no time.
            Err(why) => {
                log::info!(
                    "kernel aggregation unavailable ({why}; it needs Linux 5.12+): every \
                     transition goes to userspace"
                );
                Probe::attach_once(filter, &host, None)?
                    .map_err(|why| anyhow!("kernel aggregation refused though not asked: {why}"))
            }
        }
    }

    /// [`Probe::attach`] with or without kernel aggregation; `Ok(Err(why))` when the kernel
    /// refused it (everything is detached again then).
    fn attach_once(
        filter: &FilterConfig,
        host: &Host,
        aggregate: Option<aggregate::Choice>,
    ) -> Result<Result<Probe, String>> {
        let Host {
            choice,
            offsets,
            kernel,
            btf,
            layout,
            ..
        } = host;
        let max_sockets = crate::model::limits::configured_max_sockets();
        let (slots, timewait_slots) = match aggregate {
            Some(_) => (
                aggregate::slots(max_sockets),
                aggregate::timewait_slots(host.max_tw_buckets, max_sockets),
            ),
            None => (1, tracer_common::life::TIMEWAIT_WAYS),
        };
        let tw_bucket_mask = timewait_slots / tracer_common::life::TIMEWAIT_WAYS - 1;
        let reqsk_value = kernel.reqsk_timer_handler.unwrap_or(0);
        let handler_value = kernel.tw_timer_handler.unwrap_or(0);
        // The per-socket maps of owner filters take memory only when one is set.
        let owner_filter = filter.owner_match != 0;
        let entries = |n| if owner_filter { n } else { fm::UNUSED_ENTRIES };
        let used: Vec<u32> = layout
            .sizes()
            .map(|(_, b)| b)
            .filter(|&b| b > 4096)
            .collect();
        log::debug!(
            "tw_timer_handler at {handler_value:#x}, TIME_WAIT starts in hashdance: {}, \
             owner filter maps: {owner_filter}, {} event rings of {} bytes",
            kernel.hashdance,
            used.len(),
            used.first().copied().unwrap_or(0)
        );
        let (hashdance, ring_mask) = (u32::from(kernel.hashdance), layout.mask());
        let (aggregating, slot_mask) = (u32::from(aggregate.is_some()), slots - 1);
        let dwell_entries = match aggregate {
            Some(_) => tracer_common::life::DWELL_ENTRIES,
            None => 1,
        };
        let mut loader = EbpfLoader::new();
        loader
            .btf(btf)
            .override_global("OFFSETS", offsets, true)
            .override_global("FILTER", filter, true)
            .override_global("TW_TIMER_HANDLER", &handler_value, true)
            .override_global("REQSK_TIMER_HANDLER", &reqsk_value, true)
            .override_global("TW_START_IN_HASHDANCE", &hashdance, true)
            .override_global("RING_MASK", &ring_mask, true)
            .override_global("AGGREGATE", &aggregating, true)
            .override_global("SLOT_MASK", &slot_mask, true)
            .override_global("TW_BUCKET_MASK", &tw_bucket_mask, true)
            .override_global("HOME_NETNS", &host.home_netns, true)
            .map_max_entries("LIVES", slots)
            .map_max_entries("TIMEWAITS", timewait_slots)
            .map_max_entries("DWELL", dwell_entries)
            .map_max_entries(fm::SOCKETS, entries(fm::SOCKETS_ENTRIES))
            .map_max_entries(fm::TUPLES, entries(fm::TUPLES_ENTRIES))
            .map_max_entries(fm::LISTENERS, entries(fm::LISTENERS_ENTRIES));
        for (name, bytes) in layout.sizes() {
            loader.map_max_entries(name, bytes);
        }
        let mut ebpf = loader
            .load(aya::include_bytes_aligned!(concat!(
                env!("OUT_DIR"),
                "/tracer"
            )))
            .context("loading the eBPF programs")?;
        let mut aggregated = aggregate::Outcome::NotAsked;
        let path = if floor::requested() {
            floor::attach(&mut ebpf, btf)?;
            timewait::Path::None(format!("{}=1", floor::ENV))
        } else {
            aggregated = attach_tracepoints(&mut ebpf, btf, aggregate)?;
            if let aggregate::Outcome::Refused(why) = aggregated {
                return Ok(Err(why));
            }
            let path = timewait::attach(&mut ebpf, btf, kernel, *choice)?;
            match &path {
                timewait::Path::None(_) => log::warn!("{path}"),
                _ => log::info!("{path}"),
            }
            requests::attach(&mut ebpf, btf, kernel.reqsk_timer_handler, &path);
            path
        };
        let rings = rings::Rings::take(&mut ebpf, layout)?;
        let lives = match aggregated {
            aggregate::Outcome::Attached => {
                let mib = |n: u32, size: usize| n as f64 * size as f64 / (1 << 20) as f64;
                log::info!(
                    "kernel aggregation: durations counted in the kernel, a life record per \
                     connection ({slots} lives and {timewait_slots} timewaits followed at once \
                     at most, {:.1} MiB)",
                    mib(slots, size_of::<tracer_common::life::LifeSlot>())
                        + mib(
                            timewait_slots,
                            size_of::<tracer_common::life::TimewaitSlot>()
                        )
                );
                Some(aggregate::Lives::take(&mut ebpf, slots, timewait_slots)?)
            }
            aggregate::Outcome::Refused(_) | aggregate::Outcome::NotAsked => None,
        };
        let lost = PerCpuArray::try_from(ebpf.take_map("LOST").context("LOST map missing")?)?;
        let messages = aya_log::EbpfLogger::init(&mut ebpf)
            .map_err(|e| log::warn!("the eBPF programs' messages cannot be read: {e}"))
            .ok();
        Ok(Ok(Probe {
            ebpf,
            rings,
            lost,
            messages,
            timewait_supported: path.followed(),
            timewait: path,
            lives,
        }))
    }

    /// Waits until a ring has a batch of events, then appends to `out`, in time order, every
    /// event read that is older than the reorder horizon ([`rings::REORDER_NS`]).
    pub async fn read(&mut self, out: &mut Vec<RawEvent>) -> Result<()> {
        self.rings.read(out).await
    }

    /// [`Probe::read`] without waiting (on a timer, and before answering a query).
    pub fn drain(&mut self, out: &mut Vec<RawEvent>) {
        self.rings.drain(out, false);
        self.print_messages();
    }

    /// Prints what the programs logged since the last call.
    fn print_messages(&mut self) {
        if let Some(messages) = &mut self.messages {
            messages.flush();
        }
    }

    /// How long after an event it is surely handed on by [`Probe::drain`] (0 with one ring).
    pub fn reorder_delay(&self) -> std::time::Duration {
        self.rings.reorder_delay()
    }

    /// Appends every event still queued or held, in time order (the final read before exit).
    pub fn drain_final(&mut self, out: &mut Vec<RawEvent>) {
        self.rings.drain(out, true);
        self.print_messages();
        if let Some(lives) = &self.lives {
            lives.log_counts();
        }
    }

    /// Tells the kernel side's owner filter about a socket that predates the trace and whose
    /// owner matched (from the attach-time snapshot): it is followed by its addresses and
    /// ports, and a listener's children too. `local`/`remote` as the kernel stores them.
    pub fn follow_existing(
        &mut self,
        netns: u32,
        family: u16,
        local: ([u8; 16], u16),
        remote: ([u8; 16], u16),
        listening: bool,
    ) -> Result<()> {
        let map = self
            .ebpf
            .map_mut(fm::TUPLES)
            .context("tuples map missing")?;
        let mut map: HashMap<_, SockTuple, u8> = HashMap::try_from(map)?;
        let key = SockTuple {
            netns,
            family,
            sport: local.1,
            dport: remote.1,
            _pad: 0,
            saddr: addr_words(&local.0),
            daddr: addr_words(&remote.0),
        };
        map.insert(&key, &1, 0)
            .context("following an existing socket")?;
        if listening {
            let map = self
                .ebpf
                .map_mut(fm::LISTENERS)
                .context("listeners map missing")?;
            let mut map: HashMap<_, ListenerKey, u8> = HashMap::try_from(map)?;
            let key = ListenerKey {
                netns,
                port: local.1,
                _pad: 0,
            };
            map.insert(&key, &1, 0)
                .context("following an existing listener")?;
        }
        Ok(())
    }

    /// Events lost: those the kernel side could not queue because the ring buffer was full,
    /// plus the program runs the kernel skipped ([`Probe::missed_by_kernel`]).
    pub fn lost(&self) -> Result<u64> {
        let per_cpu = self
            .lost
            .get(&0, 0)
            .context("reading the lost-events counter")?;
        let ring: Vec<u64> = per_cpu.iter().copied().collect();
        Ok(lost::total_lost(&ring, &[self.missed_by_kernel()?]))
    }

    /// Runs of the loaded programs that the kernel skipped because the same program was
    /// already running on that CPU (`recursion_misses`, Linux 5.12+; 0 before). Each may have
    /// been an event; a skipped timer hook may also have been for a timer that was not a
    /// timewait socket's, so this is an upper bound.
    pub fn missed_by_kernel(&self) -> Result<u64> {
        lost::missed_by_kernel(&self.ebpf)
    }
}
