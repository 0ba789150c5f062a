//! Reads a recording record by record. Every problem is a [`ReadError`] naming the byte offset
//! where the bad header or record starts; nothing here panics on any input, and every record
//! returned before an error is intact (its CRC-32 matched).
use std::io::{self, Read};

use super::format::{
    FIRST_OPTIONAL_TAG, FORMAT_VERSION, FRAME_CRC, FRAME_HEAD, HEADER_LEN, Header, MAGIC, Record,
    TAG_END, TAG_REQUEST, crc32, decode_request, payload_len,
};

/// What is wrong, and where.
#[derive(Debug)]
pub struct ReadError {
    /// Byte offset in the file of the header or record that could not be read.
    pub offset: u64,
    pub problem: Problem,
}

#[derive(Debug)]
pub enum Problem {
    NotARecording,
    NewerVersion(u16),
    UnknownVersion(u16),
    TruncatedHeader {
        have: usize,
    },
    HeaderChecksum,
    BadHeader(String),
    TruncatedRecord {
        have: usize,
        need: usize,
    },
    UnknownRecord(u8),
    BadLength {
        tag: u8,
        len: usize,
        expected: usize,
    },
    RecordChecksum,
    BadRecord(u8),
    MissingEnd,
    DataAfterEnd,
    EventCount {
        recorded: u64,
        read: u64,
    },
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.offset;
        match &self.problem {
            Problem::NotARecording => write!(
                f,
                "not a tracer recording (no \"\\x89TRACER\\n\" magic at byte {at}; make one \
                 with `tracer record -o FILE`)"
            ),
            Problem::NewerVersion(v) => write!(
                f,
                "recording format version {v} (byte {at}) is newer than this tracer reads \
                 (version {FORMAT_VERSION}): replay it with a newer tracer"
            ),
            Problem::UnknownVersion(v) => {
                write!(f, "unknown recording format version {v} at byte {at}")
            }
            Problem::TruncatedHeader { have } => write!(
                f,
                "truncated header at byte {at}: {have} of {HEADER_LEN} bytes present"
            ),
            Problem::HeaderChecksum => {
                write!(f, "corrupt header at byte {at}: checksum mismatch")
            }
            Problem::BadHeader(what) => write!(f, "malformed header at byte {at}: {what}"),
            Problem::TruncatedRecord { have, need } => write!(
                f,
                "truncated record at byte {at}: {have} of {need} bytes present"
            ),
            Problem::UnknownRecord(tag) => {
                write!(
                    f,
                    "malformed record at byte {at}: unknown record type {tag}"
                )
            }
            Problem::BadLength { tag, len, expected } => write!(
                f,
                "malformed record at byte {at}: type {tag} is {len} bytes long, expected {expected}"
            ),
            Problem::RecordChecksum => write!(f, "corrupt record at byte {at}: checksum mismatch"),
            Problem::BadRecord(tag) => {
                write!(
                    f,
                    "malformed record at byte {at}: type {tag} does not decode"
                )
            }
            Problem::MissingEnd => write!(
                f,
                "truncated recording at byte {at}: the end record is missing (the recorder was \
                 killed, or the copy is incomplete)"
            ),
            Problem::DataAfterEnd => {
                write!(
                    f,
                    "malformed recording at byte {at}: data after the end record"
                )
            }
            Problem::EventCount { recorded, read } => write!(
                f,
                "malformed end record at byte {at}: it counts {recorded} events, {read} precede it"
            ),
            Problem::Io(e) => write!(f, "read error at byte {at}: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// A recording being read: the header at once, then [`Reader::next_record`] until `Ok(None)`.
pub struct Reader<R> {
    inner: R,
    header: Header,
    /// Offset of the next record.
    offset: u64,
    /// Events returned so far, checked against the end record.
    events: u64,
    /// Set after the end record or an error: the reader is fused.
    done: bool,
    buf: Vec<u8>,
    /// The request-socket fields read for the next event ([`TAG_REQUEST`]).
    request: Option<(u64, u8, u8)>,
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn fill(inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut have = 0;
    while have < buf.len() {
        match inner.read(&mut buf[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(have)
}

fn fail<T>(offset: u64, problem: Problem) -> Result<T, ReadError> {
    Err(ReadError { offset, problem })
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header: magic, version, length, checksum, fields.
    pub fn new(mut inner: R) -> Result<Reader<R>, ReadError> {
        let mut head = [0u8; HEADER_LEN];
        let have = fill(&mut inner, &mut head).map_err(|e| ReadError {
            offset: 0,
            problem: Problem::Io(e),
        })?;
        let magic_seen = have.min(MAGIC.len());
        if head[..magic_seen] != MAGIC[..magic_seen] {
            return fail(0, Problem::NotARecording);
        }
        if have >= 10 {
            match u16::from_le_bytes([head[8], head[9]]) {
                FORMAT_VERSION => {}
                v if v > FORMAT_VERSION => return fail(8, Problem::NewerVersion(v)),
                v => return fail(8, Problem::UnknownVersion(v)),
            }
        }
        if have < HEADER_LEN {
            return fail(0, Problem::TruncatedHeader { have });
        }
        let (body, crc) = head.split_at(HEADER_LEN - FRAME_CRC);
        if crc32(body).to_le_bytes() != crc {
            return fail(0, Problem::HeaderChecksum);
        }
        let header = Header::decode(&head).map_err(|(offset, what)| ReadError {
            offset,
            problem: Problem::BadHeader(what),
        })?;
        Ok(Reader {
            inner,
            header,
            offset: HEADER_LEN as u64,
            events: 0,
            done: false,
            buf: Vec::with_capacity(128),
            request: None,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Event records read so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The next record; `Ok(None)` after the end record (checked to be the last bytes).
    /// After an error it returns `Ok(None)`: what came before stays valid.
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_record();
        if matches!(result, Err(_) | Ok(Some(Record::End { .. }))) {
            self.done = true;
        }
        result
    }

    fn read_record(&mut self) -> Result<Option<Record>, ReadError> {
        loop {
            let at = self.offset;
            let io = |e| ReadError {
                offset: at,
                problem: Problem::Io(e),
            };
            let mut head = [0u8; FRAME_HEAD];
            match fill(&mut self.inner, &mut head).map_err(io)? {
                0 => return fail(at, Problem::MissingEnd),
                have @ 1..FRAME_HEAD => {
                    let need = FRAME_HEAD + FRAME_CRC;
                    return fail(at, Problem::TruncatedRecord { have, need });
                }
                _ => {}
            }
            let [tag, lo, hi] = head;
            let len = usize::from(u16::from_le_bytes([lo, hi]));
            match payload_len(tag) {
                Some(expected) if expected != len => {
                    return fail(at, Problem::BadLength { tag, len, expected });
                }
                None if tag < FIRST_OPTIONAL_TAG => return fail(at, Problem::UnknownRecord(tag)),
                _ => {}
            }
            let need = FRAME_HEAD + len + FRAME_CRC;
            self.buf.clear();
            self.buf.extend_from_slice(&head);
            self.buf.resize(need, 0);
            let have =
                FRAME_HEAD + fill(&mut self.inner, &mut self.buf[FRAME_HEAD..]).map_err(io)?;
            if have < need {
                return fail(at, Problem::TruncatedRecord { have, need });
            }
            let (framed, crc) = self.buf.split_at(need - FRAME_CRC);
            if crc32(framed).to_le_bytes() != crc {
                return fail(at, Problem::RecordChecksum);
            }
            self.offset += need as u64;
            if payload_len(tag).is_none() {
                continue; // an optional record this version does not know
            }
            if tag == TAG_REQUEST {
                let Some(fields) = decode_request(&framed[FRAME_HEAD..]) else {
                    return fail(at, Problem::BadRecord(tag));
                };
                self.request = Some(fields);
                continue;
            }
            let Some(mut record) = Record::decode(tag, &framed[FRAME_HEAD..]) else {
                return fail(at, Problem::BadRecord(tag));
            };
            match &mut record {
                Record::Event(raw) => {
                    self.events += 1;
                    if let Some((start_ns, retransmits, end)) = self.request.take() {
                        (raw.start_ns, raw.retransmits, raw.end) = (start_ns, retransmits, end);
                    }
                }
                &mut Record::End { events, .. } if events != self.events => {
                    let read = self.events;
                    return fail(
                        at,
                        Problem::EventCount {
                            recorded: events,
                            read,
                        },
                    );
                }
                Record::End { .. } => {
                    debug_assert_eq!(tag, TAG_END);
                    let mut extra = [0u8; 1];
                    if fill(&mut self.inner, &mut extra).map_err(io)? > 0 {
                        return fail(self.offset, Problem::DataAfterEnd);
                    }
                }
                Record::Tick { .. } => {}
            }
            return Ok(Some(record));
        }
    }
}
