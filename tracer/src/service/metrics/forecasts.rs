//! The latest forecasts ([`crate::service::doctor::live`]) as gauges. Only what the forecasts
//! list is a series (the TIME_WAIT buckets of this namespace and at most
//! [`crate::service::doctor::findings::TOP`] destinations), and each renewal replaces them all,
//! so the number of series stays bounded.
//!
//! | metric                                   | labels                             |
//! |------------------------------------------|------------------------------------|
//! | `tracer_forecast_steady_need`            | `limit`, `destination`, `process`, `unit`, `container` |
//! | `tracer_forecast_limit`                  | the same                           |
//! | `tracer_forecast_runs_out_in_seconds`    | the same                           |
//!
//! `limit` is `timewait_buckets` (no destination) or `local_ports`; the last one exists only
//! for a forecast that runs out (0 when the limit is reached now).
use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use serde_json::Value;

use crate::service::doctor::{findings::Finding, live::Forecasts, sysctl};

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ForecastLabels {
    limit: &'static str,
    destination: String,
    process: String,
    /// The process's systemd unit and container, when known.
    unit: String,
    container: String,
}

#[derive(Debug, Default)]
pub struct ForecastMetrics {
    steady: Family<ForecastLabels, FloatGauge>,
    limit: Family<ForecastLabels, FloatGauge>,
    runs_out: Family<ForecastLabels, FloatGauge>,
}

fn number(f: &Finding, key: &str) -> Option<f64> {
    f.evidence.get(key).and_then(Value::as_f64)
}

impl ForecastMetrics {
    pub fn new(registry: &mut Registry) -> ForecastMetrics {
        let m = ForecastMetrics::default();
        let r = registry.sub_registry_with_prefix("tracer_forecast");
        r.register(
            "steady_need",
            "Timewait sockets, or local ports towards a destination, needed at once at the \
             measured rate and lifetimes (Little's law), from the latest forecast",
            m.steady.clone(),
        );
        r.register(
            "limit",
            "The limit a forecast is against: tcp_max_tw_buckets, or the size of \
             ip_local_port_range",
            m.limit.clone(),
        );
        r.register(
            "runs_out_in_seconds",
            "Seconds until the limit is reached at the measured growth (0: reached now); only \
             for forecasts that run out",
            m.runs_out.clone(),
        );
        m
    }

    /// Replaces every series with those of `forecasts`.
    pub fn refresh(&self, forecasts: &Forecasts) {
        self.steady.clear();
        self.limit.clear();
        self.runs_out.clear();
        for f in &forecasts.findings {
            let (limit, need, size) = match f.id {
                "timewait-forecast" => (
                    "timewait_buckets",
                    "steady_timewaits",
                    sysctl::MAX_TW_BUCKETS,
                ),
                "ports-forecast" => ("local_ports", "steady_ports", "range_size"),
                _ => continue,
            };
            let text = |key: &str| {
                f.evidence
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let labels = ForecastLabels {
                limit,
                destination: text("destination"),
                unit: text("unit"),
                container: text("container"),
                // The command name only: a pid would make a new series per restart.
                process: text("process")
                    .split(" (")
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            };
            // A forecast without enough data has no number: no series rather than a 0.
            if let Some(v) = number(f, need) {
                self.steady.get_or_create(&labels).set(v);
            }
            if let Some(v) = number(f, size) {
                self.limit.get_or_create(&labels).set(v);
            }
            if let Some(v) = number(f, "runs_out_in_secs") {
                self.runs_out.get_or_create(&labels).set(v);
            }
        }
    }
}
