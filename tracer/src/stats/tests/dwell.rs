//! Kernel aggregation's buckets against exact recording.
use tracer_common::life::{dwell_bucket, dwell_bucket_value};

use super::super::*;

/// Kernel aggregation counts each duration in a log-linear bucket and userspace records
/// the bucket's midpoint: every percentile must stay within 1 % of recording the values.
#[test]
fn kernel_buckets_keep_every_percentile_within_one_percent() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (low, span) in [
        (1_000u64, 10.0f64),
        (50_000, 1_000.0),
        (1_000_000_000, 100.0),
    ] {
        let (mut exact, mut bucketed) = (StateStats::new(), StateStats::new());
        for _ in 0..20_000 {
            let ns = (low as f64 * span.powf((next() % 10_000) as f64 / 10_000.0)) as u64;
            exact.record_dwell(TcpState::CloseWait, ns, 1);
            let value = dwell_bucket_value(dwell_bucket(ns));
            bucketed.record_dwell(TcpState::CloseWait, value, 1);
        }
        let (e, b) = (
            exact.summary(TcpState::CloseWait, &[]),
            bucketed.summary(TcpState::CloseWait, &[]),
        );
        assert_eq!(e.count, b.count);
        for (x, y) in [
            (e.min_ns, b.min_ns),
            (e.p50_ns, b.p50_ns),
            (e.p90_ns, b.p90_ns),
            (e.p99_ns, b.p99_ns),
            (e.max_ns, b.max_ns),
        ] {
            let off = (x as f64 - y as f64).abs() / x as f64;
            assert!(off <= 0.01, "{x} vs {y} from {low} ns");
        }
    }
}
