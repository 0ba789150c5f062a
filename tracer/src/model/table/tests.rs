//! The compact tables against `HashMap`: same rows found by address and by second key, through
//! growth, shrinking, swap-removals and evictions.
use std::collections::HashMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::family::{Keyed, Payload, Rows};
use super::{Row, Table};
use crate::model::Tuple;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TestRow {
    sk: u64,
    touched: u64,
    alt: Option<u8>,
}

impl Row for TestRow {
    type Alt = u8;
    fn sk(&self) -> u64 {
        self.sk
    }
    fn touched_ns(&self) -> u64 {
        self.touched
    }
    fn alt(&self) -> Option<u8> {
        self.alt
    }
}

#[derive(Clone, Debug)]
enum Op {
    Upsert(TestRow),
    Remove(u64),
    Evict(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let row = (0u64..48, 0u64..1000, prop::option::of(0u8..4))
        .prop_map(|(sk, touched, alt)| TestRow { sk, touched, alt });
    prop_oneof![
        6 => row.prop_map(Op::Upsert),
        3 => (0u64..48).prop_map(Op::Remove),
        1 => (0u64..48).prop_map(Op::Evict),
    ]
}

fn check(table: &Table<TestRow>, reference: &HashMap<u64, TestRow>) -> Result<(), TestCaseError> {
    prop_assert_eq!(table.len(), reference.len());
    for sk in 0..48 {
        prop_assert_eq!(table.get(sk), reference.get(&sk).copied());
    }
    for alt in 0..4 {
        let newest = reference
            .values()
            .filter(|r| r.alt == Some(alt))
            .map(|r| r.touched)
            .max();
        let found = table.latest(&alt);
        prop_assert_eq!(found.map(|r| r.touched), newest);
        prop_assert!(found.is_none_or(|r| reference.get(&r.sk) == Some(&r)));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn a_table_finds_what_a_hash_map_finds(ops in prop::collection::vec(op(), 1..300)) {
        let mut table = Table::default();
        let mut reference = HashMap::new();
        for op in ops {
            match op {
                Op::Upsert(row) => {
                    prop_assert_eq!(table.upsert(row), !reference.contains_key(&row.sk));
                    reference.insert(row.sk, row);
                }
                Op::Remove(sk) => prop_assert_eq!(table.remove(sk), reference.remove(&sk)),
                Op::Evict(keep) => {
                    let oldest = reference.values().filter(|r| r.sk != keep).map(|r| r.touched).min();
                    let evicted = table.evict_oldest(keep);
                    prop_assert_eq!(evicted.is_some(), oldest.is_some());
                    if let Some(row) = evicted {
                        prop_assert!(row.sk != keep);
                        prop_assert_eq!(reference.remove(&row.sk), Some(row));
                        // Small tables are scanned whole: the eviction is exact LRU.
                        if reference.len() < super::EVICTION_SAMPLES {
                            prop_assert_eq!(Some(row.touched), oldest);
                        }
                    }
                }
            }
            check(&table, &reference)?;
        }
    }
}

#[test]
fn a_large_table_grows_and_shrinks_back_consistently() {
    let mut table = Table::default();
    let row = |sk: u64| TestRow {
        sk: sk * 2304,
        touched: sk,
        alt: sk.is_multiple_of(3).then_some((sk % 7) as u8),
    };
    for sk in 0..50_000 {
        assert!(table.upsert(row(sk)));
    }
    for sk in (0..50_000u64).filter(|sk| !sk.is_multiple_of(10)) {
        assert_eq!(table.remove(sk * 2304), Some(row(sk)));
    }
    assert_eq!(table.len(), 5_000);
    for sk in 0..50_000u64 {
        let kept = sk.is_multiple_of(10).then(|| row(sk));
        assert_eq!(table.get(sk * 2304), kept);
    }
    let newest = (0..50_000u64)
        .filter(|sk| sk.is_multiple_of(30) && sk % 7 == 3)
        .max();
    assert_eq!(table.latest(&3).map(|r| r.touched), newest);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Data(u64);

impl Payload for Data {
    fn touched_ns(&self) -> u64 {
        self.0
    }
    fn by_tuple(&self) -> bool {
        true
    }
    fn owner_mut(&mut self) -> &mut u32 {
        unimplemented!("no owners here")
    }
}

fn keyed(sk: u64, local: &str, remote: &str, at: u64) -> Keyed<Data> {
    let (l, r): (IpAddr, IpAddr) = (local.parse().unwrap(), remote.parse().unwrap());
    let tuple = Tuple::new(l, 1000 + sk as u16, r, 80);
    Keyed {
        sk,
        netns: 7,
        tuple,
        data: Data(at),
    }
}

#[test]
fn rows_of_both_families_keep_their_exact_tuples_and_their_cap() {
    let mut rows = Rows::new(3);
    let v4 = keyed(1, "10.0.0.1", "10.0.0.2", 1);
    let v6 = keyed(2, "fd00::1", "fd00::2", 2);
    let mapped = keyed(3, "::ffff:10.0.0.1", "::ffff:10.0.0.3", 3);
    let mixed = keyed(4, "10.0.0.1", "fd00::2", 4);
    for row in [v4, v6, mapped] {
        assert_eq!(rows.put(row), None);
    }
    for row in [v4, v6, mapped] {
        assert_eq!(rows.get(row.sk), Some(row));
        assert_eq!(rows.latest(7, &row.tuple), Some(row));
        assert_eq!(rows.latest(8, &row.tuple), None, "another netns");
    }
    // Full: the least recently changed (the IPv4 row) goes.
    assert_eq!(rows.put(mixed), Some(v4));
    assert_eq!((rows.len(), rows.evicted()), (3, 1));
    assert_eq!(rows.get(4), Some(mixed));
    // An address reused by the other family holds only its new row.
    let reused = keyed(2, "10.0.0.9", "10.0.0.2", 9);
    assert_eq!(rows.put(reused), None);
    assert_eq!((rows.get(2), rows.len()), (Some(reused), 3));
    assert_eq!(rows.latest(7, &v6.tuple), None);
}
