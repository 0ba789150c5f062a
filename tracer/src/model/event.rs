//! The one `Event` type every source (live ring buffer, synthetic test sequence) feeds the model.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use tracer_common::{AF_INET, AF_INET6, RawEvent, kind, req_end};

use super::state::TcpState;

/// A connection's addresses as seen from this host: local first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Tuple {
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
}

impl Tuple {
    pub fn new(local: IpAddr, local_port: u16, remote: IpAddr, remote_port: u16) -> Self {
        Tuple {
            local,
            local_port,
            remote,
            remote_port,
        }
    }
}

/// A task's command name as the kernel keeps it: 16 bytes, NUL-padded. Kept inline, in events
/// and owners alike, so nothing on the per-event path allocates for it. NUL padding makes the
/// byte order the order of the names.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Comm([u8; 16]);

impl Comm {
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(16);
        std::str::from_utf8(&self.0[..len]).unwrap_or("?")
    }
}

impl From<&str> for Comm {
    fn from(s: &str) -> Self {
        let mut bytes = [0u8; 16];
        let n = s.len().min(15);
        bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        Comm(bytes)
    }
}

impl PartialEq<str> for Comm {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Comm {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Comm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Which timer event of a timewait socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerPhase {
    Start,
    Expire,
    Cancel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A full socket changed state.
    StateChange {
        old: TcpState,
        new: TcpState,
    },
    /// A state change after which the kernel follows the socket's life (kernel aggregation):
    /// its next transitions come in a [`EventKind::Life`].
    Followed {
        old: TcpState,
        new: TcpState,
    },
    /// The timer of a timewait socket; `substate` is TIME_WAIT or FIN_WAIT2.
    TimeWait {
        phase: TimerPhase,
        substate: TcpState,
    },
    /// A timer event of a timewait socket whose start comes later, in the LIFE record of the
    /// life it took over (another CPU had not reached that life's CLOSE yet).
    TimeWaitAhead {
        phase: TimerPhase,
        substate: TcpState,
    },
    ResetSent,
    ResetReceived,
    /// `SYN_RECV -> CLOSE` of a listener's child that never took its request socket over
    /// ([`tracer_common::life::flags::CHILD_LOST`]).
    ChildLost,
    /// A socket life followed in the kernel ([`tracer_common::life`]), ending with
    /// `old -> new` (CLOSE: the life is over; else its timewait socket took over).
    Life {
        old: TcpState,
        new: TcpState,
        path: LifePath,
        /// [`tracer_common::life::flags`] bits.
        flags: u8,
        /// When its first transition happened.
        start_ns: u64,
        /// When it entered `old` (the transitions before, except the first, at this time too).
        entered_ns: u64,
        /// The timewait socket that took it over: right before `old -> new` if that is the
        /// CLOSE, else (a life handed back early) after it.
        timewait: Option<LifeTimewait>,
    },
    /// A request socket (a half-open connection) ended; the event's time is its end.
    RequestEnd {
        /// When its first SYN-ACK went out (microseconds after the SYN); `None` when unknown.
        start_ns: Option<u64>,
        /// SYN-ACKs retransmitted.
        retransmits: u8,
        how: RequestEnd,
    },
}

/// The start of the timewait socket that took a kernel-followed life over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifeTimewait {
    pub sk: u64,
    pub ts_ns: u64,
    /// FIN_WAIT2 (an orphaned socket's FIN_WAIT2 goes on in it) or TIME_WAIT.
    pub substate: TcpState,
    /// The kernel follows it to its end ([`tracer_common::life::flags::TIMEWAIT_KERNEL`]):
    /// none of its events come, its durations are counted there.
    pub in_kernel: bool,
}

/// The states a life went through, in order (at most [`tracer_common::life::PATH_STATES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifePath(u64);

impl LifePath {
    /// Checks every state of a kernel path (4 bits each, ended by 0).
    pub fn new(path: u64) -> Result<LifePath, DecodeError> {
        for s in LifePath(path).raw() {
            state(s)?;
        }
        Ok(LifePath(path))
    }

    fn raw(self) -> impl Iterator<Item = u8> {
        (0..tracer_common::life::PATH_STATES)
            .map(move |i| tracer_common::life::path_state(self.0, i))
            .take_while(|&s| s != 0)
    }

    pub fn states(self) -> impl Iterator<Item = TcpState> {
        self.raw().filter_map(TcpState::from_kernel)
    }
}

/// How a request socket ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestEnd {
    /// Taken out of the SYN queue before its timer ran out: by the final ACK when a child
    /// socket took over, else by an RST or a netns exit.
    Unlinked,
    /// Its timer ran out: dropped unanswered after its SYN-ACK retransmits.
    Expired,
}

/// One thing the kernel reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Boot-time nanoseconds (CLOCK_BOOTTIME).
    pub ts_ns: u64,
    /// Kernel address of the socket (full or timewait).
    pub sk: u64,
    pub kind: EventKind,
    pub tuple: Tuple,
    /// Process (tgid) current when the event fired; 0 in softirq on an idle CPU.
    pub pid: u32,
    pub comm: Comm,
    /// cgroup (v2) id of the current task: its container.
    pub cgroup_id: u64,
    pub netns: u32,
}

/// Why a raw record could not become an [`Event`].
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    UnknownKind(u8),
    UnknownState(u8),
    UnknownFamily(u16),
    UnknownEnd(u8),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::UnknownKind(k) => write!(f, "unknown event kind {k}"),
            DecodeError::UnknownState(s) => write!(f, "unknown TCP state number {s}"),
            DecodeError::UnknownFamily(a) => write!(f, "unknown address family {a}"),
            DecodeError::UnknownEnd(e) => write!(f, "unknown request socket end {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn ip(family: u16, bytes: &[u8; 16]) -> Result<IpAddr, DecodeError> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(*bytes))),
        other => Err(DecodeError::UnknownFamily(other)),
    }
}

fn state(n: u8) -> Result<TcpState, DecodeError> {
    TcpState::from_kernel(n).ok_or(DecodeError::UnknownState(n))
}

impl TryFrom<&RawEvent> for Event {
    type Error = DecodeError;

    fn try_from(raw: &RawEvent) -> Result<Self, Self::Error> {
        let timer = |phase| -> Result<EventKind, DecodeError> {
            let substate = state(raw.new_state)?;
            Ok(
                match raw.life_flags & tracer_common::life::flags::TIMEWAIT_AHEAD {
                    0 => EventKind::TimeWait { phase, substate },
                    _ => EventKind::TimeWaitAhead { phase, substate },
                },
            )
        };
        let kind = match raw.kind {
            kind::STATE_CHANGE if raw.life_flags & tracer_common::life::flags::CHILD_LOST != 0 => {
                EventKind::ChildLost
            }
            kind::STATE_CHANGE
                if raw.life_flags & tracer_common::life::flags::KERNEL_FOLLOWS != 0 =>
            {
                EventKind::Followed {
                    old: state(raw.old_state)?,
                    new: state(raw.new_state)?,
                }
            }
            kind::STATE_CHANGE => EventKind::StateChange {
                old: state(raw.old_state)?,
                new: state(raw.new_state)?,
            },
            kind::TW_START => timer(TimerPhase::Start)?,
            kind::TW_EXPIRE => timer(TimerPhase::Expire)?,
            kind::TW_CANCEL => timer(TimerPhase::Cancel)?,
            kind::RESET_SENT => EventKind::ResetSent,
            kind::RESET_RECEIVED => EventKind::ResetReceived,
            kind::LIFE => EventKind::Life {
                old: state(raw.old_state)?,
                new: state(raw.new_state)?,
                path: LifePath::new(raw.path)?,
                flags: raw.life_flags,
                start_ns: raw.start_ns,
                entered_ns: raw.entered_ns,
                timewait: (raw.timewait_sk != 0).then_some(LifeTimewait {
                    sk: raw.timewait_sk,
                    ts_ns: raw.timewait_ns,
                    substate: match raw.life_flags & tracer_common::life::flags::TIMEWAIT_FIN_WAIT2
                    {
                        0 => TcpState::TimeWait,
                        _ => TcpState::FinWait2,
                    },
                    in_kernel: raw.life_flags & tracer_common::life::flags::TIMEWAIT_KERNEL != 0,
                }),
            },
            kind::REQ_END => EventKind::RequestEnd {
                start_ns: (raw.start_ns != 0).then_some(raw.start_ns),
                retransmits: raw.retransmits,
                how: match raw.end {
                    req_end::UNLINKED => RequestEnd::Unlinked,
                    req_end::EXPIRED => RequestEnd::Expired,
                    other => return Err(DecodeError::UnknownEnd(other)),
                },
            },
            other => return Err(DecodeError::UnknownKind(other)),
        };
        Ok(Event {
            ts_ns: raw.ts_ns,
            sk: raw.sk,
            kind,
            tuple: Tuple::new(
                ip(raw.family, &raw.saddr)?,
                raw.sport,
                ip(raw.family, &raw.daddr)?,
                raw.dport,
            ),
            pid: (raw.pid_tgid >> 32) as u32,
            comm: Comm(raw.comm),
            cgroup_id: raw.cgroup_id,
            netns: raw.netns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::tcp_state;

    #[test]
    fn decodes_an_ipv4_state_change() {
        let mut raw = RawEvent {
            ts_ns: 5,
            sk: 0xffff_0000,
            pid_tgid: (42u64 << 32) | 43,
            kind: kind::STATE_CHANGE,
            old_state: tcp_state::ESTABLISHED,
            new_state: tcp_state::FIN_WAIT1,
            family: AF_INET,
            sport: 8080,
            dport: 40000,
            ..Default::default()
        };
        raw.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        raw.daddr[..4].copy_from_slice(&[127, 0, 0, 2]);
        raw.comm[..5].copy_from_slice(b"nginx");
        let ev = Event::try_from(&raw).unwrap();
        assert_eq!(ev.pid, 42);
        assert_eq!(ev.comm.as_str(), "nginx");
        assert_eq!(ev.tuple.local.to_string(), "127.0.0.1");
        assert_eq!(ev.tuple.remote_port, 40000);
        assert_eq!(
            ev.kind,
            EventKind::StateChange {
                old: TcpState::Established,
                new: TcpState::FinWait1
            }
        );
    }

    #[test]
    fn a_child_that_lost_its_request_socket_is_told_apart() {
        let raw = RawEvent {
            kind: kind::STATE_CHANGE,
            old_state: tcp_state::SYN_RECV,
            new_state: tcp_state::CLOSE,
            family: AF_INET,
            life_flags: tracer_common::life::flags::CHILD_LOST,
            ..Default::default()
        };
        assert_eq!(Event::try_from(&raw).unwrap().kind, EventKind::ChildLost);
    }

    #[test]
    fn rejects_garbage_instead_of_guessing() {
        let raw = RawEvent {
            kind: 99,
            family: AF_INET,
            ..Default::default()
        };
        assert_eq!(Event::try_from(&raw), Err(DecodeError::UnknownKind(99)));
        let raw = RawEvent {
            kind: kind::STATE_CHANGE,
            old_state: 1,
            new_state: 1,
            family: 77,
            ..Default::default()
        };
        assert_eq!(Event::try_from(&raw), Err(DecodeError::UnknownFamily(77)));
    }
}
