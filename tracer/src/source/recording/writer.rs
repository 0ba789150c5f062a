//! Writes a recording: the header at once, then one framed record per event, a tick record
//! every second and the end record. Buffered by the caller's writer; [`Writer::flush`] on each
//! tick bounds what a crash can lose to about a second.
use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use tracer_common::RawEvent;

use super::format::{Header, Record, encode_request};

pub struct Writer<W: Write> {
    out: W,
    buf: Vec<u8>,
    events: u64,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(mut out: W, header: &Header) -> io::Result<Writer<W>> {
        out.write_all(&header.encode())?;
        Ok(Writer {
            out,
            buf: Vec::with_capacity(128),
            events: 0,
        })
    }

    fn put(&mut self, record: Record) -> io::Result<()> {
        self.buf.clear();
        record.encode(&mut self.buf);
        self.out.write_all(&self.buf)
    }

    pub fn event(&mut self, raw: &RawEvent) -> io::Result<()> {
        if raw.kind == tracer_common::kind::REQ_END {
            self.buf.clear();
            encode_request(raw, &mut self.buf);
            self.out.write_all(&self.buf)?;
        }
        self.put(Record::Event(*raw))?;
        self.events += 1;
        Ok(())
    }

    /// The recorder's clock and the lost-events counter so far (cumulative).
    pub fn tick(&mut self, now_ns: u64, lost: u64) -> io::Result<()> {
        self.put(Record::Tick { now_ns, lost })
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Writes the end record and flushes; returns the inner writer.
    pub fn finish(mut self, end_ns: u64, lost: u64) -> io::Result<W> {
        let events = self.events;
        self.put(Record::End {
            end_ns,
            lost,
            events,
        })?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Creates (or truncates) `path` with mode 0600: a recording shows every connection's addresses
/// and processes. An existing regular file is narrowed to 0600 too.
pub fn create(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.is_file() {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}
