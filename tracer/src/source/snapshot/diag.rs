//! One netlink sock_diag dump (INET_DIAG, what `ss -tan` reads) of every TCP socket in the
//! calling thread's network namespace, IPv4 then IPv6, every state including the timewait and
//! request (SYN_RECV) sockets that are not full sockets.
//!
//! Like `ss`, the dump walks the kernel's hash tables bucket by bucket, not under one lock: a
//! socket that is created, closed or handed to a timewait socket while it runs may be missed
//! or seen twice. At rest (the incident case) the counts are exact.
//!
//! Netlink rather than /proc/net/tcp: it is binary (no text parsing of thousands of lines), it
//! carries the timewait timer in milliseconds, and it scales to the socket counts of an incident.
use anyhow::{Context, Result, bail};
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    Nla as _,
};
use netlink_packet_sock_diag::{
    AF_INET, AF_INET6, IPPROTO_TCP, SockDiagMessage,
    inet::{ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags, nlas::Nla},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use crate::model::{TcpState, Tuple};

/// `idiag_timer` value of a timewait socket's timer (net/ipv4/inet_diag.c).
pub const TIMER_TIMEWAIT: u8 = 3;

/// `INET_DIAG_CGROUP_ID`: the cgroup (v2) id of the socket, sent for full sockets. The crate
/// does not name it, so it arrives as `Nla::Other`.
const INET_DIAG_CGROUP_ID: u16 = 21;

/// Offset of `idiag_expires` (u32, host order, milliseconds) in `struct inet_diag_msg`:
/// family, state, timer, retrans (4 bytes), then the 48-byte `inet_diag_sockid`.
const EXPIRES_OFFSET: usize = 52;

/// The kernel fills dump datagrams up to 32 KiB; a larger buffer never truncates one.
const RECV_BYTES: usize = 64 * 1024;

/// Bound on datagrams per dump, so a misbehaving kernel reply cannot loop forever: at ~100
/// sockets per datagram this allows hundreds of millions of sockets.
const MAX_DATAGRAMS: usize = 4_000_000;

/// One socket as the kernel reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub state: TcpState,
    pub tuple: Tuple,
    /// sockfs inode; 0 for timewait and request sockets (they have no file).
    pub inode: u64,
    pub uid: u32,
    /// cgroup (v2) id of the socket; 0 when the kernel did not say (timewait, request).
    pub cgroup_id: u64,
    /// Kind of timer running (`idiag_timer`), 0 for none.
    pub timer: u8,
    /// Milliseconds until that timer fires (`idiag_expires`).
    pub expires_ms: u32,
    /// Retransmits (`idiag_retrans`): a request socket's SYN-ACK retransmits.
    pub retrans: u8,
}

/// Every TCP socket of both families in this thread's network namespace.
pub fn dump_all() -> Result<Vec<Entry>> {
    let mut socket =
        Socket::new(NETLINK_SOCK_DIAG).context("opening a sock_diag netlink socket")?;
    socket.bind_auto().context("binding the sock_diag socket")?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .context("connecting the sock_diag socket")?;
    let mut all = dump(&socket, AF_INET, 1)?;
    all.extend(dump(&socket, AF_INET6, 2)?);
    Ok(all)
}

fn dump(socket: &Socket, family: u8, seq: u32) -> Result<Vec<Entry>> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let socket_id = if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    };
    // StateFlags::all() covers the 11 states; the kernel adds request sockets (its internal
    // TCP_NEW_SYN_RECV) whenever SYN_RECV is asked for.
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id,
        })
        .into(),
    );
    request.finalize();
    let mut out = vec![0; request.buffer_len()];
    request.serialize(&mut out);
    socket
        .send(&out, 0)
        .context("sending the sock_diag dump request")?;

    let mut entries = Vec::new();
    let mut buf = Vec::with_capacity(RECV_BYTES);
    for _ in 0..MAX_DATAGRAMS {
        buf.clear();
        // MSG_TRUNC makes recv return the datagram's real length, so truncation is detected.
        let size = socket
            .recv(&mut buf, libc::MSG_TRUNC)
            .context("reading the sock_diag dump")?;
        if size > buf.len() {
            bail!("a sock_diag datagram of {size} bytes did not fit in {RECV_BYTES}");
        }
        if parse_datagram(&buf, &mut entries)? {
            return Ok(entries);
        }
    }
    bail!("the sock_diag dump did not end after {MAX_DATAGRAMS} datagrams")
}

/// Appends the sockets of one datagram; returns true at the end of the dump.
pub(super) fn parse_datagram(mut bytes: &[u8], entries: &mut Vec<Entry>) -> Result<bool> {
    while !bytes.is_empty() {
        let frame = NetlinkBuffer::new_checked(bytes)
            .map_err(|e| anyhow::anyhow!("malformed netlink message: {e}"))?;
        let len = frame.length() as usize;
        let raw_payload = frame.payload();
        let message = NetlinkMessage::<SockDiagMessage>::deserialize(&bytes[..len])
            .map_err(|e| anyhow::anyhow!("undecodable sock_diag message: {e}"))?;
        match message.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                if let Some(entry) = entry(&response, raw_payload) {
                    entries.push(entry);
                }
            }
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(e) => {
                return Err(e.to_io()).context("the kernel refused the sock_diag dump");
            }
            NetlinkPayload::Overrun(_) => bail!("the sock_diag dump overran"),
            _ => {}
        }
        // Messages are 4-byte aligned inside a datagram.
        let next = (len + 3) & !3;
        bytes = bytes.get(next..).unwrap_or_default();
    }
    Ok(false)
}

/// The socket one response describes; `None` for a state number outside the 11 TCP states.
fn entry(response: &InetResponse, raw_payload: &[u8]) -> Option<Entry> {
    let h = &response.header;
    let state = TcpState::from_kernel(h.state)?;
    let id = &h.socket_id;
    // The crate maps a timewait timer to `Timer::TimeWait` and drops its expiry, the one number
    // that dates a TIME_WAIT: read `idiag_timer` and `idiag_expires` from the fixed header.
    let timer = raw_payload.get(2).copied().unwrap_or(0);
    let retrans = raw_payload.get(3).copied().unwrap_or(0);
    let expires_ms = raw_payload
        .get(EXPIRES_OFFSET..EXPIRES_OFFSET + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0);
    let cgroup_id = response
        .nlas
        .iter()
        .find_map(|nla| match nla {
            Nla::Other(attr) if attr.kind() == INET_DIAG_CGROUP_ID && attr.value_len() == 8 => {
                let mut value = [0u8; 8];
                attr.emit_value(&mut value);
                Some(u64::from_ne_bytes(value))
            }
            _ => None,
        })
        .unwrap_or(0);
    Some(Entry {
        state,
        // Addresses as the kernel gives them: an IPv4-mapped IPv6 address stays IPv6, as the
        // eBPF events report it, so a snapshot socket and its later events share one tuple.
        tuple: Tuple::new(
            id.source_address,
            id.source_port,
            id.destination_address,
            id.destination_port,
        ),
        inode: u64::from(h.inode),
        uid: h.uid,
        cgroup_id,
        timer,
        expires_ms,
        retrans,
    })
}
