//! The filter, applied before any ring-buffer space is reserved: family, ports, addresses and
//! namespace from the event itself; owner criteria (cgroup, pid, command) through per-socket
//! state, so a socket stays kept for its whole life even when most of its transitions happen in
//! softirq context, where the current task is whichever one was interrupted.
use core::mem::MaybeUninit;

use aya_ebpf::{
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::map,
    maps::LruHashMap,
};
use tracer_common::{
    FilterConfig, ListenerKey, MAX_ADDR_RULES, MAX_CGROUP_DEPTH, SockTuple, accepts_ports,
    follow_maps, is_wildcard_listener_change, kind, owner_match, tcp_state::*,
};

/// Like aya's `Global` (a read-only global the loader overrides), but read one field at a time:
/// the filter is larger than the 512-byte BPF stack a whole copy would need.
#[repr(transparent)]
pub struct Config<T>(MaybeUninit<T>);

// SAFETY: read-only after load; the programs never write it.
unsafe impl<T: Sync> Sync for Config<T> {}

impl<T> Config<T> {
    pub const fn new(value: T) -> Self {
        Config(MaybeUninit::new(value))
    }

    #[inline(always)]
    fn as_ptr(&self) -> *const T {
        self.0.as_ptr()
    }
}

/// What to keep; everything else never reaches the ring buffer. Written by the loader.
#[unsafe(no_mangle)]
pub static FILTER: Config<FilterConfig> = Config::new(FilterConfig::ALL);

/// One field of [`FILTER`], read volatile so the compiler cannot fold the load-time value.
macro_rules! filter {
    ($($field:tt)+) => {
        // SAFETY: an in-bounds field of a static that lives for the program's whole life.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*FILTER.as_ptr()).$($field)+)) }
    };
}

/// Full sockets owned by a matching task, by kernel address (value unused). The loader
/// sizes these maps ([`follow_maps`]); the names are theirs.
#[map]
static FOLLOWED: LruHashMap<u64, u8> =
    LruHashMap::with_max_entries(follow_maps::SOCKETS_ENTRIES, 0);

/// Connections whose timewait socket is followed (their full socket was), and pre-existing
/// sockets whose owner matched in the attach-time snapshot.
#[map]
static FOLLOWED_TUPLES: LruHashMap<SockTuple, u8> =
    LruHashMap::with_max_entries(follow_maps::TUPLES_ENTRIES, 0);

/// Listeners of matching owners: their children are followed.
#[map]
static FOLLOWED_LISTENERS: LruHashMap<ListenerKey, u8> =
    LruHashMap::with_max_entries(follow_maps::LISTENERS_ENTRIES, 0);

/// Family and ports: checked first, before the addresses are even read.
#[inline(always)]
pub fn passes_ports(family: u16, sport: u16, dport: u16) -> bool {
    let (want_family, port_count) = (filter!(family), filter!(port_count));
    if want_family == 0 && port_count == 0 {
        // No family or port filter: leave before copying the port list.
        return true;
    }
    let ports = filter!(ports);
    accepts_ports(want_family, port_count, &ports, family, sport, dport)
}

/// The network namespace.
#[inline(always)]
pub fn passes_netns(netns: u32) -> bool {
    let want = filter!(netns);
    want == 0 || want == netns
}

/// The local or the remote address is in one of the networks, or the event is a listener on
/// every address starting or ending ([`is_wildcard_listener_change`]).
#[inline(always)]
pub fn passes_addresses(t: &SockTuple, event_kind: u8, old: u8, new: u8) -> bool {
    let count = filter!(addr_count) as usize;
    if count == 0 || is_wildcard_listener_change(event_kind, old, new, &t.saddr) {
        return true;
    }
    let mut i = 0;
    while i < MAX_ADDR_RULES {
        if i >= count {
            break;
        }
        let rule = filter!(addrs[i]);
        if rule.matches(t.family, &t.saddr) || rule.matches(t.family, &t.daddr) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether an owner filter is set at all (a verifier-known constant: the rest is pruned).
#[inline(always)]
pub fn has_owner_filter() -> bool {
    filter!(owner_match) != 0
}

/// Does the current task match every owner criterion?
#[inline(always)]
fn current_task_matches() -> bool {
    let want = filter!(owner_match);
    if want & owner_match::PID != 0 && (bpf_get_current_pid_tgid() >> 32) as u32 != filter!(pid) {
        return false;
    }
    if want & owner_match::COMM != 0 {
        let Ok(comm) = bpf_get_current_comm() else {
            return false;
        };
        let expected = filter!(comm);
        if words(&comm) != words(&expected) {
            return false;
        }
    }
    if want & owner_match::CGROUP != 0 {
        // The task's cgroup or any ancestor: a service's processes may sit in sub-cgroups.
        let target = filter!(cgroup_id);
        let mut level = 0;
        let mut found = false;
        while level < MAX_CGROUP_DEPTH {
            // SAFETY: helper without pointer arguments.
            let id = unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) };
            if id == 0 {
                break;
            }
            if id == target {
                found = true;
                break;
            }
            level += 1;
        }
        if !found {
            return false;
        }
    }
    true
}

/// A 16-byte command name as two words (no memcmp in BPF).
#[inline(always)]
fn words(comm: &[u8; 16]) -> (u64, u64) {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&comm[..8]);
    hi.copy_from_slice(&comm[8..]);
    (u64::from_ne_bytes(lo), u64::from_ne_bytes(hi))
}

#[inline(always)]
fn contains<K, V>(map: &LruHashMap<K, V>, key: &K) -> bool {
    map.get_ptr(key).is_some()
}

/// Whether this event's socket is followed under the owner filter, updating the per-socket
/// state. `sk` is the socket of the event (full, timewait or request socket), `old` the old
/// state of a state change or the socket's state in a reset hook.
#[inline(always)]
pub fn followed(event_kind: u8, sk: u64, old: u8, new: u8, t: &SockTuple) -> bool {
    let listener = ListenerKey {
        netns: t.netns,
        port: t.sport,
        _pad: 0,
    };
    match event_kind {
        kind::STATE_CHANGE => state_change(sk, old, new, t, &listener),
        kind::TW_START | kind::TW_CANCEL => contains(&FOLLOWED_TUPLES, t),
        kind::TW_EXPIRE => {
            // The normal end of the timewait socket: nothing of this connection follows.
            let hit = contains(&FOLLOWED_TUPLES, t);
            if hit {
                let _ = FOLLOWED_TUPLES.remove(t);
            }
            hit
        }
        // Reset hooks: `old` is the socket's state.
        _ => match old {
            TIME_WAIT => contains(&FOLLOWED_TUPLES, t),
            NEW_SYN_RECV => contains(&FOLLOWED_LISTENERS, &listener),
            _ => contains(&FOLLOWED, &sk) || contains(&FOLLOWED_TUPLES, t),
        },
    }
}

#[inline(always)]
fn state_change(sk: u64, old: u8, new: u8, t: &SockTuple, listener: &ListenerKey) -> bool {
    // Transitions made inside a system call of the task (connect, listen, close, shutdown):
    // the ones the userspace model takes the owner from, and a listener's close.
    let in_owner_context = matches!(
        (old, new),
        (CLOSE, SYN_SENT)
            | (CLOSE, LISTEN)
            | (LISTEN, CLOSE)
            | (ESTABLISHED, FIN_WAIT1)
            | (CLOSE_WAIT, LAST_ACK)
    );
    let new_life = matches!(
        (old, new),
        (CLOSE, SYN_SENT) | (CLOSE, LISTEN) | (LISTEN, SYN_RECV)
    );
    let followed = if in_owner_context && current_task_matches() {
        let _ = FOLLOWED.insert(&sk, &1, 0);
        true
    } else if new_life {
        // A new life at this address (the allocator reuses addresses) or a listener's child:
        // decided now, whatever an earlier life left behind.
        let child_of_followed =
            (old, new) == (LISTEN, SYN_RECV) && contains(&FOLLOWED_LISTENERS, listener);
        if child_of_followed {
            let _ = FOLLOWED.insert(&sk, &1, 0);
        } else {
            let _ = FOLLOWED.remove(&sk);
            if old == LISTEN {
                // The tuple is complete: an earlier connection's entry for it is stale.
                let _ = FOLLOWED_TUPLES.remove(t);
            }
        }
        child_of_followed
    } else if contains(&FOLLOWED, &sk) {
        true
    } else if (old, new) == (SYN_SENT, ESTABLISHED) {
        // A client life that began unfollowed; its tuple is complete only now.
        let _ = FOLLOWED_TUPLES.remove(t);
        false
    } else {
        // Not seen from its start: a socket that predates the trace, found by its tuple.
        contains(&FOLLOWED_TUPLES, t)
    };
    if followed {
        if new == LISTEN {
            let _ = FOLLOWED_LISTENERS.insert(listener, &1, 0);
        } else if old == LISTEN && new == CLOSE {
            let _ = FOLLOWED_LISTENERS.remove(listener);
        }
        if matches!(new, FIN_WAIT1 | FIN_WAIT2 | CLOSING) {
            // Its timewait socket, when one takes over, has this tuple.
            let _ = FOLLOWED_TUPLES.insert(t, &1, 0);
        }
    }
    followed
}
