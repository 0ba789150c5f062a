//! Who ended a connection, and how: the close-initiator table (docs/how-it-works.md) as code.
//!
//! | first closing transition            | meaning                                   |
//! |-------------------------------------|-------------------------------------------|
//! | ESTABLISHED -> FIN_WAIT1             | this side closed first (holds TIME_WAIT)  |
//! | ESTABLISHED -> CLOSE_WAIT            | the peer closed first                     |
//! | FIN_WAIT1 -> CLOSING                 | both closed at once                       |
//! | * -> CLOSE, then tcp_send_reset      | this side aborted with RST                |
//! | tcp_receive_reset, then * -> CLOSE   | the peer aborted with RST                 |
//! | SYN_SENT -> CLOSE                    | the connect failed (refused, timed out)   |
//! | SYN_RECV -> CLOSE                    | the handshake never completed             |
use std::{fmt, net::IpAddr};

use serde::Serialize;

use super::TcpState;

/// How a connection ended, from this host's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseKind {
    LocalFirst,
    PeerFirst,
    Simultaneous,
    RstSent,
    RstReceived,
    ConnectFailed,
    HandshakeIncomplete,
    /// Went to CLOSE with no FIN and no RST seen: a timeout or a local error.
    Aborted,
}

impl CloseKind {
    pub const ALL: [CloseKind; 8] = [
        CloseKind::LocalFirst,
        CloseKind::PeerFirst,
        CloseKind::Simultaneous,
        CloseKind::RstSent,
        CloseKind::RstReceived,
        CloseKind::ConnectFailed,
        CloseKind::HandshakeIncomplete,
        CloseKind::Aborted,
    ];

    /// The first-close kind a transition decides, if it is a closing one.
    pub fn from_first_close(old: TcpState, new: TcpState) -> Option<CloseKind> {
        use TcpState::*;
        match (old, new) {
            (Established | SynRecv, FinWait1) => Some(CloseKind::LocalFirst),
            (Established | SynRecv, CloseWait) => Some(CloseKind::PeerFirst),
            _ => None,
        }
    }

    /// Short words for a transition line.
    pub fn describe(self) -> &'static str {
        match self {
            CloseKind::LocalFirst => "this side closed first",
            CloseKind::PeerFirst => "peer closed first",
            CloseKind::Simultaneous => "both closed at once",
            CloseKind::RstSent => "this side sent RST",
            CloseKind::RstReceived => "peer sent RST",
            CloseKind::ConnectFailed => "connect failed",
            CloseKind::HandshakeIncomplete => "handshake not completed",
            CloseKind::Aborted => "aborted without FIN or RST",
        }
    }
}

/// Which end of the connection this socket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Called connect() (CLOSE -> SYN_SENT).
    Client,
    /// Child of a listener (LISTEN -> SYN_RECV).
    Server,
    Listener,
    /// Seen only mid-life: role guessed from the ports for the service, not asserted.
    Unknown,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Role::Client => "client",
            Role::Server => "server",
            Role::Listener => "listener",
            Role::Unknown => "unknown",
        })
    }
}

/// A connection's service: the server's address and port (local for the server role, remote for
/// the client role).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Service {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `127.0.0.1:80`, `[::1]:80`; padded, so tables can align it.
        f.pad(&std::net::SocketAddr::new(self.addr, self.port).to_string())
    }
}

impl Service {
    /// The service a socket belongs to: the server's end of its tuple. Client: the remote
    /// end; server or listener: the local end; unknown: a known listening port, else the side
    /// with the lower port (the usual shape of a service).
    pub fn of(role: Role, tuple: &super::Tuple, local_port_listens: bool) -> Service {
        let local = Service {
            addr: tuple.local,
            port: tuple.local_port,
        };
        let remote = Service {
            addr: tuple.remote,
            port: tuple.remote_port,
        };
        match role {
            Role::Server | Role::Listener => local,
            Role::Client => remote,
            Role::Unknown if local_port_listens || tuple.local_port < tuple.remote_port => local,
            Role::Unknown => remote,
        }
    }
}

/// The end of one connection as seen from one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct End {
    pub kind: CloseKind,
    pub role: Role,
    pub service: Service,
    /// This side took on a TIME_WAIT (or FIN_WAIT2 timewait) socket for it.
    pub timewait: bool,
}
