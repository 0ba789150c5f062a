//! Shared maps, load-time globals and the one function that fills and submits an event.
use aya_ebpf::{
    Global,
    helpers::bpf_probe_read_kernel,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, generated,
    },
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use tracer_common::{AF_INET, AF_INET6, KernelOffsets, RawEvent, SockTuple};

use crate::filter;

/// Member offsets of the running kernel, written by the loader from its BTF.
#[unsafe(no_mangle)]
pub static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
    skc_daddr: 0,
    skc_rcv_saddr: 0,
    skc_dport: 0,
    skc_family: 0,
    skc_num: 0,
    skc_state: 0,
    skc_v6_daddr: 0,
    skc_v6_rcv_saddr: 0,
    skc_net: 0,
    net_ns_inum: 0,
    sk_protocol: 0,
    sk_protocol_size: 0,
    inet_sport: 0,
    tw_substate: 0,
    tw_sport: 0,
    tw_timer: 0,
    timer_function: 0,
    timer_pprev: 0,
    skc_cookie: 0,
    rsk_timer: 0,
    num_retrans: 0,
    skc_nulls_pprev: 0,
    snt_synack: 0,
    fastopen_rsk: 0,
});

/// One member of [`OFFSETS`] with a single load, for paths that must exit early and cheaply
/// (`OFFSETS.load()` copies the whole struct with one volatile load per member).
#[macro_export]
macro_rules! offset {
    ($field:ident) => {
        // SAFETY: Global is repr(transparent) over an always-initialised KernelOffsets; the
        // volatile read keeps the loader-written value from being constant-folded.
        unsafe {
            core::ptr::read_volatile(
                &raw const (*(&raw const $crate::emit::OFFSETS)
                    .cast::<tracer_common::KernelOffsets>())
                .$field,
            )
        }
    };
}

/// Declares the event rings ([`tracer_common::MAX_RINGS`]); CPU n writes ring
/// `n & RING_MASK`, in order of reservation. Sized by the loader; those not in use keep a page.
macro_rules! rings {
    ($($ring:ident),+) => {
        $(
            #[map]
            static $ring: RingBuf = RingBuf::with_byte_size(4096, 0);
        )+
    };
}
rings!(
    EVENTS0, EVENTS1, EVENTS2, EVENTS3, EVENTS4, EVENTS5, EVENTS6, EVENTS7
);

/// Rings in use minus one (a power of two minus one), written by the loader.
#[unsafe(no_mangle)]
static RING_MASK: Global<u32> = Global::new(0);

/// [`emit`]'s error when the event was lost because its ring was full, the first time on this
/// CPU: the program logs it once (later losses are only counted).
pub const FIRST_LOSS: i32 = i32::MIN;

/// Reservations that failed because the ring buffer was full: events lost, reported by userspace.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// How a program reads kernel memory at a BTF-derived offset.
pub trait Reader {
    fn read<T: Copy>(base: *const u8, offset: u32) -> Result<T, i32>;
}

/// `bpf_probe_read_kernel`: for pointers the verifier cannot type (a timewait socket found
/// from its timer, a socket of unknown kind in the reset hooks).
pub struct ProbeRead;

impl Reader for ProbeRead {
    #[inline(always)]
    fn read<T: Copy>(base: *const u8, offset: u32) -> Result<T, i32> {
        // SAFETY: the helper copies through the kernel's fault-safe accessor; a bad address
        // yields an error, never a fault.
        unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T) }
    }
}

/// A plain load from a BTF-typed tp_btf argument: no helper call on the hot path. The offset
/// comes from the read-only globals, so the verifier knows it and checks it against BTF.
pub struct DirectRead;

impl Reader for DirectRead {
    #[inline(always)]
    fn read<T: Copy>(base: *const u8, offset: u32) -> Result<T, i32> {
        // SAFETY: `base` is a tp_btf pointer argument; the verifier rejects any access outside
        // the BTF layout and faulting loads of BTF pointers read as zero.
        Ok(unsafe { core::ptr::read_volatile(base.add(offset as usize) as *const T) })
    }
}

/// Reads a `T` at `base + offset` with `bpf_probe_read_kernel`.
#[inline(always)]
pub fn read<T: Copy>(base: *const u8, offset: u32) -> Result<T, i32> {
    ProbeRead::read(base, offset)
}

/// An IPv4 or IPv6 address as four 32-bit loads (the kernel aligns `in6_addr` to 4 bytes).
#[inline(always)]
fn read_addr<R: Reader>(sk: *const u8, offset: u32, words: u32) -> [u32; 4] {
    // Built from four values rather than a zeroed array filled in place: zero-filling stack
    // memory compiles to a byte-wise memset subprogram on BPF.
    let word = |i: u32| {
        if i < words {
            R::read::<u32>(sk, offset + 4 * i).unwrap_or(0)
        } else {
            0
        }
    };
    [word(0), word(1), word(2), word(3)]
}

/// Stores an address as four 32-bit words (`in6_addr` is 4-byte aligned in RawEvent too).
///
/// # Safety
/// `dst` must be valid for writes of 16 bytes at 4-byte alignment.
#[inline(always)]
unsafe fn write_addr(dst: *mut [u8; 16], words: &[u32; 4]) {
    let dst = dst.cast::<u32>();
    let mut i = 0;
    while i < 4 {
        // SAFETY: in bounds of the 16-byte array, per the caller's contract.
        unsafe { dst.add(i).write(words[i]) };
        i += 1;
    }
}

/// What the caller already read about the socket: enough to apply the filter before reserving.
#[derive(Clone, Copy)]
pub struct Seen {
    pub kind: u8,
    pub sk: *const u8,
    pub old_state: u8,
    pub new_state: u8,
    pub family: u16,
    pub sport: u16,
}

/// Applies the filter, then reserves, fills and submits one event. `sk` points at a
/// `sock_common` (full, timewait or request socket).
#[inline(always)]
pub fn emit<R: Reader>(seen: Seen) -> Result<(), i32> {
    emit_flagged::<R>(seen, 0)
}

/// [`emit`] with [`tracer_common::life::flags`] set on the record.
#[inline(always)]
pub fn emit_flagged<R: Reader>(seen: Seen, life_flags: u8) -> Result<(), i32> {
    emit_at::<R>(seen, life_flags, 0)
}

/// [`emit_flagged`] for a change that happened at `at_ns` (0: now) and is sent late.
#[inline(always)]
pub fn emit_at<R: Reader>(seen: Seen, life_flags: u8, at_ns: u64) -> Result<(), i32> {
    let Some(t) = kept::<R>(&seen)? else {
        return Ok(());
    };
    // Taken before the reservation: if a nested program (a softirq on this CPU) reserves
    // in between, the times still give the order the tracepoints fired in.
    let ts_ns = match at_ns {
        // SAFETY: helper without arguments.
        0 => unsafe { bpf_ktime_get_boot_ns() },
        at => at,
    };
    push(|ev| {
        // SAFETY: `ev` is the reserved record, exclusively this program's until submitted.
        unsafe {
            write_tuple(ev, &seen, &t);
            (*ev).ts_ns = ts_ns;
            (*ev).sk = seen.sk as u64;
            (*ev).pid_tgid = bpf_get_current_pid_tgid();
            (*ev).cgroup_id = bpf_get_current_cgroup_id();
            (*ev).life_flags = life_flags;
            (*ev).path = 0;
            (*ev).start_ns = 0;
            (*ev).entered_ns = 0;
            (*ev).timewait_sk = 0;
            (*ev).timewait_ns = 0;
            // The helper fills (or, on error, zeroes) the 16 bytes itself.
            generated::bpf_get_current_comm((&raw mut (*ev).comm).cast(), 16);
        }
    })
}

/// The socket's addresses, ports and namespace when the filter keeps the event, else `None`.
#[inline(always)]
pub fn kept<R: Reader>(seen: &Seen) -> Result<Option<SockTuple>, i32> {
    // Family and ports first, before the addresses are even read.
    let dport = remote_port::<R>(seen)?;
    if !filter::passes_ports(seen.family, seen.sport, dport) {
        return Ok(None);
    }
    let t = tuple_with::<R>(seen, dport)?;
    let kept = filter::passes_netns(t.netns)
        && filter::passes_addresses(&t, seen.kind, seen.old_state, seen.new_state)
        && (!filter::has_owner_filter()
            || filter::followed(
                seen.kind,
                seen.sk as u64,
                seen.old_state,
                seen.new_state,
                &t,
            ));
    Ok(kept.then_some(t))
}

/// The socket's addresses, ports and namespace.
#[inline(always)]
pub fn tuple<R: Reader>(seen: &Seen) -> Result<SockTuple, i32> {
    tuple_with::<R>(seen, remote_port::<R>(seen)?)
}

/// The remote port, host order.
#[inline(always)]
fn remote_port<R: Reader>(seen: &Seen) -> Result<u16, i32> {
    Ok(u16::from_be(R::read::<u16>(seen.sk, offset!(skc_dport))?))
}

/// [`tuple`] with the remote port already read.
#[inline(always)]
fn tuple_with<R: Reader>(seen: &Seen, dport: u16) -> Result<SockTuple, i32> {
    let sk = seen.sk;
    let (saddr, daddr) = if seen.family == AF_INET {
        (
            read_addr::<R>(sk, offset!(skc_rcv_saddr), 1),
            read_addr::<R>(sk, offset!(skc_daddr), 1),
        )
    } else if seen.family == AF_INET6 {
        (
            read_addr::<R>(sk, offset!(skc_v6_rcv_saddr), 4),
            read_addr::<R>(sk, offset!(skc_v6_daddr), 4),
        )
    } else {
        ([0; 4], [0; 4])
    };
    let netns = match R::read::<u64>(sk, offset!(skc_net)) {
        Ok(net) if net != 0 => R::read::<u32>(net as *const u8, offset!(net_ns_inum)).unwrap_or(0),
        _ => 0,
    };
    // Every field given: `..Default::default()` compiled to a memset subprogram call.
    Ok(SockTuple {
        netns,
        family: seen.family,
        sport: seen.sport,
        dport,
        _pad: 0,
        saddr,
        daddr,
    })
}

/// Writes what `seen` and `t` say into a record: kind, states, addresses, ports, namespace.
///
/// # Safety
/// `ev` must point at a reserved record.
#[inline(always)]
pub unsafe fn write_tuple(ev: *mut RawEvent, seen: &Seen, t: &SockTuple) {
    // SAFETY: per the caller's contract; RawEvent is repr(C) without implicit padding.
    unsafe {
        (*ev).netns = t.netns;
        write_addr(&raw mut (*ev).saddr, &t.saddr);
        write_addr(&raw mut (*ev).daddr, &t.daddr);
        (*ev).sport = seen.sport;
        (*ev).dport = t.dport;
        (*ev).family = seen.family;
        (*ev).kind = seen.kind;
        (*ev).old_state = seen.old_state;
        (*ev).new_state = seen.new_state;
        // A request socket's end sets these after (reqsk.rs).
        (*ev).retransmits = 0;
        (*ev).end = 0;
    }
}

/// Reserves a record in this CPU's ring, lets `fill` write every field, and submits it.
#[inline(always)]
pub fn push(fill: impl Fn(*mut RawEvent)) -> Result<(), i32> {
    // SAFETY: helper without arguments.
    let cpu = unsafe { generated::bpf_get_smp_processor_id() };
    match cpu & RING_MASK.load() {
        0 => submit(&EVENTS0, &fill),
        1 => submit(&EVENTS1, &fill),
        2 => submit(&EVENTS2, &fill),
        3 => submit(&EVENTS3, &fill),
        4 => submit(&EVENTS4, &fill),
        5 => submit(&EVENTS5, &fill),
        6 => submit(&EVENTS6, &fill),
        _ => submit(&EVENTS7, &fill),
    }
}

/// Reserves, fills and submits one record in `ring` (inlined at each ring: the verifier needs
/// each map known at its call site).
#[inline(always)]
fn submit(ring: &RingBuf, fill: &impl Fn(*mut RawEvent)) -> Result<(), i32> {
    let Some(mut entry) = ring.reserve::<RawEvent>(0) else {
        return if count_lost() == 1 {
            Err(FIRST_LOSS)
        } else {
            Ok(())
        };
    };
    // Every field is written in place by `fill`: a zeroed RawEvent built first compiles to a
    // call of a byte-wise memset subprogram.
    fill(entry.as_mut_ptr());
    entry.submit(wakeup_flag(ring));
    Ok(())
}

/// Waking the reader on every event costs more than the event (an irq_work and a context
/// switch each): wake it only once a batch has piled up; it also drains on a short timer.
#[inline(always)]
fn wakeup_flag(ring: &RingBuf) -> u64 {
    const BPF_RB_AVAIL_DATA: u64 = 0;
    const BPF_RB_NO_WAKEUP: u64 = 1;
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    if ring.query(BPF_RB_AVAIL_DATA) >= tracer_common::WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Counts one lost event on this CPU; returns the count.
#[inline(always)]
fn count_lost() -> u64 {
    match LOST.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        Some(n) => unsafe {
            *n += 1;
            *n
        },
        None => 0,
    }
}
