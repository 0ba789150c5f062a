//! The byte layout of a recording, version 1: constants, the header, the record frame, and the
//! field-by-field little-endian encoding of a [`RawEvent`]. Pure: no I/O. The tables are in
//! `docs/recording-format.md` and in the [module doc](super).
use tracer_common::{FilterConfig, MAX_PORTS, RawEvent};

/// The first 8 bytes of every recording. The high-bit first byte and the final `\n` catch
/// 7-bit and newline-translating copies, as PNG's signature does.
pub const MAGIC: [u8; 8] = *b"\x89TRACER\n";
/// The version this tracer writes and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the version-1 header, magic and checksum included.
pub const HEADER_LEN: usize = 156;
/// Longest host name stored (Linux's HOST_NAME_MAX) and longest tracer version string.
pub const HOSTNAME_MAX: usize = 64;
const TRACER_VERSION_LEN: usize = 16;

/// Header flag: `tw_timer_handler` was found, so TIME_WAIT was followed.
pub const FLAG_TIMEWAIT_FOLLOWED: u32 = 1;
/// Header flag: the kernel filter also had criteria the header does not hold (addresses,
/// namespace, owner), so the recording is narrower than its family and ports say.
pub const FLAG_FILTER_NARROWER: u32 = 2;

/// Record tags. Tags from [`FIRST_OPTIONAL_TAG`] on may be skipped by a reader that does not
/// know them; an unknown tag below it is an error.
pub const TAG_EVENT: u8 = 1;
pub const TAG_TICK: u8 = 2;
pub const TAG_END: u8 = 3;
pub const FIRST_OPTIONAL_TAG: u8 = 0x80;
/// Optional: the request-socket fields (`start_ns`, `retransmits`, `end`) of the EVENT record
/// that follows it (a request socket's end); a reader that skips it sees that event without them.
pub const TAG_REQUEST: u8 = 0x80;

/// Frame around every record: tag (1), payload length (2), payload, CRC-32 (4).
pub const FRAME_HEAD: usize = 3;
pub const FRAME_CRC: usize = 4;
pub const EVENT_LEN: usize = 93;
pub const TICK_LEN: usize = 16;
pub const END_LEN: usize = 24;
pub const REQUEST_LEN: usize = 10;

/// Payload length of a known tag; `None` for an unknown one.
pub fn payload_len(tag: u8) -> Option<usize> {
    match tag {
        TAG_EVENT => Some(EVENT_LEN),
        TAG_TICK => Some(TICK_LEN),
        TAG_END => Some(END_LEN),
        TAG_REQUEST => Some(REQUEST_LEN),
        _ => None,
    }
}

/// What the header says about the recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub flags: u32,
    /// CLOCK_BOOTTIME when recording started: the clock of every event's `ts_ns`.
    pub start_boot_ns: u64,
    /// CLOCK_REALTIME (ns since the Unix epoch) at the same moment, so replays print wall times.
    pub start_realtime_ns: i64,
    /// The filter the kernel applied while recording.
    pub filter: FilterConfig,
    /// The tracer that wrote it (`CARGO_PKG_VERSION`), at most 16 bytes.
    pub tracer_version: String,
    /// The recording host, at most [`HOSTNAME_MAX`] bytes.
    pub hostname: String,
}

/// One record after the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// One event exactly as the kernel reported it (`_pad` is not stored and reads back zero).
    Event(RawEvent),
    /// Written every second: the recorder's clock and the lost-events counter so far.
    Tick { now_ns: u64, lost: u64 },
    /// The last record: when recording stopped, the final lost counter, the events written.
    End { end_ns: u64, lost: u64, events: u64 },
}

/// Appends the framed [`TAG_REQUEST`] record of `raw`.
pub fn encode_request(raw: &RawEvent, buf: &mut Vec<u8>) {
    let start = buf.len();
    Enc(buf)
        .u8(TAG_REQUEST)
        .u16(REQUEST_LEN as u16)
        .u64(raw.start_ns)
        .u8(raw.retransmits)
        .u8(raw.end);
    let crc = crc32(&buf[start..]);
    buf.extend_from_slice(&crc.to_le_bytes());
}

/// The payload of a [`TAG_REQUEST`] record: `(start_ns, retransmits, end)`.
pub fn decode_request(payload: &[u8]) -> Option<(u64, u8, u8)> {
    let mut d = Dec::new(payload);
    let fields = (d.u64()?, d.u8()?, d.u8()?);
    (d.pos == payload.len()).then_some(fields)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and PNG compute it): every record carries one, and
/// `crc32fast` computes it with the CPU's carry-less multiply (the bytewise table it replaced
/// took a third of a replay's time).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Little-endian writer into a growing buffer.
struct Enc<'a>(&'a mut Vec<u8>);

impl Enc<'_> {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// `v` cut to `len` bytes (at a character boundary), then zero-padded to `len`.
    fn padded(&mut self, v: &str, len: usize) -> &mut Self {
        let mut end = v.len().min(len);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        self.bytes(&v.as_bytes()[..end]);
        self.0.resize(self.0.len() + len - end, 0);
        self
    }
}

/// Little-endian reader over a slice; `None` past its end (never a panic).
struct Dec<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Dec { bytes, pos: 0 }
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let out = self.bytes.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
}

impl Header {
    /// The 156 header bytes, checksum included.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(HEADER_LEN);
        let mut e = Enc(&mut buf);
        e.bytes(&MAGIC)
            .u16(FORMAT_VERSION)
            .u16(HEADER_LEN as u16)
            .u32(self.flags)
            .u64(self.start_boot_ns)
            .u64(self.start_realtime_ns as u64)
            .u16(self.filter.family)
            .u16(self.filter.port_count);
        for port in self.filter.ports {
            e.u16(port);
        }
        e.padded(&self.tracer_version, TRACER_VERSION_LEN);
        let host_len = self.hostname.len().min(HOSTNAME_MAX);
        e.u8(host_len as u8)
            .padded(&self.hostname, HOSTNAME_MAX)
            .bytes(&[0; 3]);
        let crc = crc32(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        buf
    }

    /// Decodes a whole header whose magic, version and checksum were already checked. The error
    /// is the byte offset of the bad field and what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Header, (u64, String)> {
        let short = || (0, "header too short".to_string());
        let mut d = Dec::new(bytes);
        d.array::<10>().ok_or_else(short)?; // magic, version
        let len = d.u16().ok_or_else(short)?;
        if usize::from(len) != HEADER_LEN {
            return Err((10, format!("header length {len}, expected {HEADER_LEN}")));
        }
        let flags = d.u32().ok_or_else(short)?;
        let start_boot_ns = d.u64().ok_or_else(short)?;
        let start_realtime_ns = d.u64().ok_or_else(short)? as i64;
        let mut filter = FilterConfig {
            family: d.u16().ok_or_else(short)?,
            port_count: d.u16().ok_or_else(short)?,
            ..Default::default()
        };
        if usize::from(filter.port_count) > MAX_PORTS {
            let n = filter.port_count;
            return Err((34, format!("filter with {n} ports, at most {MAX_PORTS}")));
        }
        for port in &mut filter.ports {
            *port = d.u16().ok_or_else(short)?;
        }
        let version = d.array::<TRACER_VERSION_LEN>().ok_or_else(short)?;
        let host_len = usize::from(d.u8().ok_or_else(short)?);
        if host_len > HOSTNAME_MAX {
            return Err((84, format!("host name length {host_len}, at most 64")));
        }
        let host = d.array::<HOSTNAME_MAX>().ok_or_else(short)?;
        Ok(Header {
            flags,
            start_boot_ns,
            start_realtime_ns,
            filter,
            tracer_version: text(&version),
            hostname: String::from_utf8_lossy(&host[..host_len]).into_owned(),
        })
    }

    pub fn timewait_followed(&self) -> bool {
        self.flags & FLAG_TIMEWAIT_FOLLOWED != 0
    }
}

/// A zero-padded string field.
fn text(bytes: &[u8]) -> String {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..len]).into_owned()
}

impl Record {
    /// Appends the framed record (tag, length, payload, CRC-32) to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let start = buf.len();
        let mut e = Enc(buf);
        match self {
            Record::Event(raw) => {
                e.u8(TAG_EVENT).u16(EVENT_LEN as u16);
                e.u64(raw.ts_ns)
                    .u64(raw.sk)
                    .u64(raw.pid_tgid)
                    .u64(raw.cgroup_id)
                    .u32(raw.netns)
                    .bytes(&raw.saddr)
                    .bytes(&raw.daddr)
                    .u16(raw.sport)
                    .u16(raw.dport)
                    .u16(raw.family)
                    .u8(raw.kind)
                    .u8(raw.old_state)
                    .u8(raw.new_state)
                    .bytes(&raw.comm);
            }
            Record::Tick { now_ns, lost } => {
                e.u8(TAG_TICK).u16(TICK_LEN as u16).u64(*now_ns).u64(*lost);
            }
            Record::End {
                end_ns,
                lost,
                events,
            } => {
                e.u8(TAG_END)
                    .u16(END_LEN as u16)
                    .u64(*end_ns)
                    .u64(*lost)
                    .u64(*events);
            }
        }
        let crc = crc32(&buf[start..]);
        buf.extend_from_slice(&crc.to_le_bytes());
    }

    /// Decodes the payload of a known tag (length already checked); `None` if it does not fit.
    pub fn decode(tag: u8, payload: &[u8]) -> Option<Record> {
        let mut d = Dec::new(payload);
        let record = match tag {
            TAG_EVENT => Record::Event(RawEvent {
                ts_ns: d.u64()?,
                sk: d.u64()?,
                pid_tgid: d.u64()?,
                cgroup_id: d.u64()?,
                netns: d.u32()?,
                saddr: d.array()?,
                daddr: d.array()?,
                sport: d.u16()?,
                dport: d.u16()?,
                family: d.u16()?,
                kind: d.u8()?,
                old_state: d.u8()?,
                new_state: d.u8()?,
                life_flags: 0,
                retransmits: 0,
                end: 0,
                path: 0,
                start_ns: 0,
                entered_ns: 0,
                timewait_sk: 0,
                timewait_ns: 0,
                comm: d.array()?,
            }),
            TAG_TICK => Record::Tick {
                now_ns: d.u64()?,
                lost: d.u64()?,
            },
            TAG_END => Record::End {
                end_ns: d.u64()?,
                lost: d.u64()?,
                events: d.u64()?,
            },
            _ => return None,
        };
        (d.pos == payload.len()).then_some(record)
    }
}
