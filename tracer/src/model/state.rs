//! TCP states as the kernel numbers them, with the names people type.
use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use tracer_common::tcp_state as k;

/// A TCP state (RFC 9293 names, Linux numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
}

impl TcpState {
    pub const ALL: [TcpState; 11] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
    ];

    /// The state for a kernel state number, `None` for numbers outside 1..=11
    /// (e.g. the kernel-internal TCP_NEW_SYN_RECV).
    pub fn from_kernel(n: u8) -> Option<TcpState> {
        Some(match n {
            k::ESTABLISHED => TcpState::Established,
            k::SYN_SENT => TcpState::SynSent,
            k::SYN_RECV => TcpState::SynRecv,
            k::FIN_WAIT1 => TcpState::FinWait1,
            k::FIN_WAIT2 => TcpState::FinWait2,
            k::TIME_WAIT => TcpState::TimeWait,
            k::CLOSE => TcpState::Close,
            k::CLOSE_WAIT => TcpState::CloseWait,
            k::LAST_ACK => TcpState::LastAck,
            k::LISTEN => TcpState::Listen,
            k::CLOSING => TcpState::Closing,
            _ => return None,
        })
    }

    /// The name `ss` and netstat print, e.g. `TIME_WAIT`.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        }
    }

    /// Index into per-state arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl From<TcpState> for &'static str {
    fn from(s: TcpState) -> Self {
        s.name()
    }
}

impl TryFrom<String> for TcpState {
    type Error = UnknownState;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A state name that matches none of the 11 states.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownState(pub String);

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = TcpState::ALL.iter().map(|s| s.name()).collect();
        write!(
            f,
            "unknown TCP state '{}'; valid states: {} (case, '-' and '_' do not matter)",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownState {}

impl FromStr for TcpState {
    type Err = UnknownState;

    /// Accepts `TIME_WAIT`, `time-wait`, `TIME-WAIT`, `timewait`, any case; `CLOSED` for CLOSE
    /// and `SYN_RECEIVED` for SYN_RECV as netstat and RFC 9293 spell them.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let folded: String = input
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let alias = match folded.as_str() {
            "CLOSED" => Some(TcpState::Close),
            "SYNRECEIVED" => Some(TcpState::SynRecv),
            _ => None,
        };
        alias
            .or_else(|| {
                TcpState::ALL
                    .into_iter()
                    .find(|s| s.name().replace('_', "") == folded)
            })
            .ok_or_else(|| UnknownState(input.to_string()))
    }
}

/// The states a socket is seen in (all but CLOSE), in the order an operator reads them: the
/// rows shown even when empty.
pub const OPEN_STATES: [TcpState; 10] = [
    TcpState::Listen,
    TcpState::SynSent,
    TcpState::SynRecv,
    TcpState::Established,
    TcpState::FinWait1,
    TcpState::FinWait2,
    TcpState::Closing,
    TcpState::TimeWait,
    TcpState::CloseWait,
    TcpState::LastAck,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_time_wait_parses() {
        for s in [
            "TIME_WAIT",
            "time-wait",
            "TIME-WAIT",
            "timewait",
            "Time_Wait",
        ] {
            assert_eq!(s.parse::<TcpState>(), Ok(TcpState::TimeWait), "{s}");
        }
    }

    #[test]
    fn all_states_round_trip_by_name_and_number() {
        for (i, s) in TcpState::ALL.into_iter().enumerate() {
            assert_eq!(s.name().parse::<TcpState>(), Ok(s));
            assert_eq!(s.name().to_lowercase().replace('_', "-").parse(), Ok(s));
            assert_eq!(TcpState::from_kernel(i as u8 + 1), Some(s));
            assert_eq!(s.index(), i);
        }
        assert_eq!(TcpState::from_kernel(12), None);
        assert_eq!(TcpState::from_kernel(0), None);
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let err = "bogus".parse::<TcpState>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'bogus'") && msg.contains("TIME_WAIT") && msg.contains("CLOSING"));
    }
}
