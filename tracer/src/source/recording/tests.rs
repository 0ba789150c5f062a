//! The format round trip, its exact bytes, and readers fed damaged files (proptest): never a
//! panic, an error at or before the damage, and exactly the intact records before it.
use proptest::prelude::*;
use tracer_common::{AF_INET, AF_INET6, FilterConfig, RawEvent, kind};

use super::{
    format::{FRAME_CRC, FRAME_HEAD, HEADER_LEN, MAGIC, crc32},
    *,
};

fn header() -> Header {
    let mut filter = FilterConfig {
        family: AF_INET,
        port_count: 2,
        ..Default::default()
    };
    filter.ports[..2].copy_from_slice(&[8080, 443]);
    Header {
        flags: format::FLAG_TIMEWAIT_FOLLOWED,
        start_boot_ns: 1_000_000_000,
        start_realtime_ns: 1_780_000_000_123_456_789,
        filter,
        tracer_version: "0.1.0".into(),
        hostname: "web-1.example".into(),
    }
}

fn event(i: u64) -> RawEvent {
    let mut raw = RawEvent {
        ts_ns: 1_000_000_000 + i * 1_000_003,
        sk: 0xffff_8880_0000_0000 | i,
        pid_tgid: ((100 + i) << 32) | (200 + i),
        cgroup_id: 0x0102_0304_0506_0708 ^ i,
        netns: 4_026_531_840 + i as u32,
        sport: 8080,
        dport: 40_000 + i as u16,
        family: if i.is_multiple_of(2) {
            AF_INET
        } else {
            AF_INET6
        },
        kind: kind::STATE_CHANGE,
        old_state: 1,
        new_state: 4,
        ..Default::default()
    };
    raw.saddr = [i as u8; 16];
    raw.daddr = [0xfe; 16];
    raw.comm[..5].copy_from_slice(b"nginx");
    raw
}

/// A recording of these records (the last must be `End`), and where each record ends.
fn encode(records: &[Record]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = header().encode();
    let mut ends = Vec::new();
    for r in records {
        r.encode(&mut bytes);
        ends.push(bytes.len());
    }
    (bytes, ends)
}

fn sample(n: u64) -> Vec<Record> {
    let mut records = Vec::new();
    for i in 0..n {
        records.push(Record::Event(event(i)));
        if i % 3 == 2 {
            records.push(Record::Tick {
                now_ns: 1_000_000_000 + i * 2_000_000,
                lost: i,
            });
        }
    }
    records.push(Record::End {
        end_ns: 9_000_000_000,
        lost: 7,
        events: n,
    });
    records
}

/// Every record until the end or an error.
fn read_all(bytes: &[u8]) -> (Vec<Record>, Option<ReadError>) {
    let mut reader = match Reader::new(bytes) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some(r)) => out.push(r),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

#[test]
fn writer_and_reader_round_trip() {
    let records = sample(10);
    let mut writer = Writer::new(Vec::new(), &header()).unwrap();
    for r in &records {
        match r {
            Record::Event(raw) => writer.event(raw).unwrap(),
            Record::Tick { now_ns, lost } => writer.tick(*now_ns, *lost).unwrap(),
            Record::End { .. } => {}
        }
    }
    assert_eq!(writer.events(), 10);
    let bytes = writer.finish(9_000_000_000, 7).unwrap();
    assert_eq!(bytes, encode(&records).0);
    let reader = Reader::new(&bytes[..]).unwrap();
    assert_eq!(reader.header(), &header());
    let (read, error) = read_all(&bytes);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(read, records);
}

#[test]
fn layout_is_little_endian_field_by_field() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the CRC-32 check value");
    let h = header().encode();
    assert_eq!(h.len(), HEADER_LEN);
    assert_eq!(h[..8], MAGIC);
    assert_eq!(h[8..10], [1, 0], "version 1");
    assert_eq!(h[10..12], [156, 0]);
    assert_eq!(h[16..24], 1_000_000_000u64.to_le_bytes());
    assert_eq!(h[36..40], [0x90, 0x1f, 0xbb, 0x01], "ports 8080 and 443");
    assert_eq!(h[84], 13);
    assert_eq!(&h[85..98], b"web-1.example");
    let mut buf = Vec::new();
    Record::Event(event(1)).encode(&mut buf);
    assert_eq!(buf.len(), FRAME_HEAD + 93 + FRAME_CRC);
    assert_eq!(buf[..3], [1, 93, 0]);
    let p = &buf[3..];
    assert_eq!(p[..8], event(1).ts_ns.to_le_bytes());
    assert_eq!(p[16..24], ((101u64 << 32) | 201).to_le_bytes());
    assert_eq!(
        p[68..74],
        [0x90, 0x1f, 0x41, 0x9c, 10, 0],
        "sport, dport, family"
    );
    assert_eq!(p[74..77], [kind::STATE_CHANGE, 1, 4]);
    assert_eq!(&p[77..82], b"nginx");
    assert_eq!(buf[96..], crc32(&buf[..96]).to_le_bytes());
}

#[test]
fn wrong_magic_and_newer_versions_are_named() {
    let (mut bytes, _) = encode(&sample(1));
    let (_, e) = read_all(b"GET / HTTP/1.1\r\n");
    let e = e.unwrap();
    assert!(matches!(e.problem, Problem::NotARecording), "{e}");
    assert!(e.to_string().contains("not a tracer recording"), "{e}");
    bytes[8] = 2;
    let (_, e) = read_all(&bytes);
    let e = e.unwrap();
    assert_eq!(e.offset, 8);
    assert!(e.to_string().contains("version 2"), "{e}");
    assert!(e.to_string().contains("newer tracer"), "{e}");
}

#[test]
fn a_missing_end_and_trailing_bytes_are_errors_after_the_records() {
    let records = sample(4);
    let (bytes, ends) = encode(&records);
    let cut = ends[ends.len() - 2];
    let (read, e) = read_all(&bytes[..cut]);
    assert_eq!(read, records[..records.len() - 1]);
    let e = e.unwrap();
    assert_eq!(e.offset, cut as u64);
    assert!(e.to_string().contains("end record is missing"), "{e}");

    let mut longer = bytes.clone();
    longer.push(0);
    let (read, e) = read_all(&longer);
    assert_eq!(read, records[..records.len() - 1]);
    assert_eq!(e.unwrap().offset, bytes.len() as u64);

    let (read, e) = read_all(&bytes[..cut + 10]);
    assert_eq!(read.len(), records.len() - 1);
    let e = e.unwrap().to_string();
    assert_eq!(
        e,
        format!("truncated record at byte {cut}: 10 of 31 bytes present")
    );
}

#[test]
fn a_request_sockets_end_keeps_its_start_and_retransmits() {
    let mut req = event(3);
    (req.kind, req.start_ns, req.retransmits, req.end) = (kind::REQ_END, 77, 2, 1);
    let mut writer = Writer::new(Vec::new(), &header()).unwrap();
    writer.event(&event(1)).unwrap();
    writer.event(&req).unwrap();
    writer.event(&event(2)).unwrap();
    let bytes = writer.finish(9_000_000_000, 0).unwrap();
    let (read, error) = read_all(&bytes);
    assert!(error.is_none(), "{error:?}");
    let events: Vec<RawEvent> = read
        .into_iter()
        .filter_map(|r| match r {
            Record::Event(raw) => Some(raw),
            _ => None,
        })
        .collect();
    assert_eq!(events, [event(1), req, event(2)]);
}

#[test]
fn optional_records_of_a_later_revision_are_skipped() {
    let records = sample(2);
    let (mut bytes, ends) = encode(&records);
    let mut optional = vec![0x90, 2, 0, 0xaa, 0xbb];
    optional.extend_from_slice(&crc32(&optional).to_le_bytes());
    let at = ends[0];
    bytes.splice(at..at, optional);
    let (read, e) = read_all(&bytes);
    assert!(e.is_none(), "{e:?}");
    assert_eq!(read, records);
    bytes[at] = 0x70; // not optional: an error
    let (read, e) = read_all(&bytes);
    assert_eq!(read, records[..1]);
    assert_eq!(e.unwrap().offset, at as u64);
}

#[test]
fn an_end_record_must_count_the_events_before_it() {
    let mut records = sample(3);
    records.pop();
    records.push(Record::End {
        end_ns: 1,
        lost: 0,
        events: 4,
    });
    let (_, e) = read_all(&encode(&records).0);
    assert!(
        e.unwrap()
            .to_string()
            .contains("counts 4 events, 3 precede it")
    );
}

/// Any `RawEvent` (its padding is not stored).
fn arb_raw() -> impl Strategy<Value = RawEvent> {
    let ids = (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
    );
    let addrs = (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<[u8; 16]>());
    let small = (any::<u16>(), any::<u16>(), any::<u16>(), any::<[u8; 3]>());
    (ids, addrs, small).prop_map(
        |(
            (ts_ns, sk, pid_tgid, cgroup_id, netns),
            (saddr, daddr, comm),
            (sport, dport, family, k),
        )| {
            RawEvent {
                ts_ns,
                sk,
                pid_tgid,
                cgroup_id,
                netns,
                saddr,
                daddr,
                sport,
                dport,
                family,
                kind: k[0],
                old_state: k[1],
                new_state: k[2],
                life_flags: 0,
                retransmits: 0,
                end: 0,
                path: 0,
                start_ns: 0,
                entered_ns: 0,
                timewait_sk: 0,
                timewait_ns: 0,
                comm,
            }
        },
    )
}

fn arb_records() -> impl Strategy<Value = Vec<Record>> {
    let record = prop_oneof![
        4 => arb_raw().prop_map(Record::Event),
        1 => (any::<u64>(), any::<u64>()).prop_map(|(now_ns, lost)| Record::Tick { now_ns, lost }),
    ];
    (
        prop::collection::vec(record, 0..12),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(mut records, end_ns, lost)| {
            let events = records
                .iter()
                .filter(|r| matches!(r, Record::Event(_)))
                .count();
            records.push(Record::End {
                end_ns,
                lost,
                events: events as u64,
            });
            records
        })
}

/// The records whose bytes all lie before `p`.
fn intact_before(records: &[Record], ends: &[usize], p: usize) -> Vec<Record> {
    records
        .iter()
        .zip(ends)
        .take_while(|(_, end)| **end <= p)
        .map(|(r, _)| *r)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_records_round_trip(records in arb_records()) {
        let (bytes, _) = encode(&records);
        let (read, e) = read_all(&bytes);
        prop_assert!(e.is_none(), "{:?}", e);
        prop_assert_eq!(read, records);
    }

    #[test]
    fn a_changed_byte_is_caught_at_its_record(
        records in arb_records(), at in any::<prop::sample::Index>(), xor in 1u8..,
    ) {
        let (mut bytes, ends) = encode(&records);
        let p = at.index(bytes.len());
        bytes[p] ^= xor;
        let (read, e) = read_all(&bytes);
        let e = e.expect("a changed byte is an error");
        prop_assert!(e.offset <= p as u64, "error at {} for a change at {p}: {e}", e.offset);
        prop_assert!(!e.to_string().is_empty());
        prop_assert_eq!(read, intact_before(&records, &ends, p));
    }

    #[test]
    fn a_cut_is_caught_where_it_is(records in arb_records(), at in any::<prop::sample::Index>()) {
        let (bytes, ends) = encode(&records);
        let p = at.index(bytes.len());
        let (read, e) = read_all(&bytes[..p]);
        let e = e.expect("a cut recording is an error");
        prop_assert!(e.offset <= p as u64, "error at {} for a cut at {p}: {e}", e.offset);
        prop_assert_eq!(read, intact_before(&records, &ends, p));
    }

    #[test]
    fn inserted_garbage_yields_a_prefix_and_an_error_inside(
        records in arb_records(),
        at in any::<prop::sample::Index>(),
        garbage in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let (original, ends) = encode(&records);
        let mut bytes = original.clone();
        let at = at.index(bytes.len() + 1);
        bytes.splice(at..at, garbage);
        // Garbage that repeats the bytes it displaces changes the file only further on.
        let p = original
            .iter()
            .zip(&bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(original.len());
        let (read, e) = read_all(&bytes);
        let e = e.expect("inserted bytes are an error");
        prop_assert!(e.offset <= p as u64, "error at {} for bytes inserted at {p}: {e}", e.offset);
        // The end record is never accepted: garbage follows it or it moved.
        let mut expected = intact_before(&records, &ends, p);
        expected.retain(|r| !matches!(r, Record::End { .. }));
        prop_assert_eq!(read, expected);
    }
}
