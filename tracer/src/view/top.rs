//! The text of one `tracer top` screen, shared by the full-screen and plain-text modes.
use std::collections::HashMap;

use crate::{
    engine::Collector,
    model::{Model, OPEN_STATES, OwnerId, Role, Service, Step, TcpState},
    source::cgroups::names_of_pid,
    stats::closes::{CloseStats, GroupBy},
    time::duration::human,
    view::closes::explain,
};

/// Entries into each state, and events, since the previous screen.
#[derive(Default)]
pub struct Rates {
    entered: [u64; 11],
    transitions: u64,
    last_events: u64,
    last_ns: u64,
}

impl Rates {
    pub fn record(&mut self, step: &Step) {
        self.entered[step.to.index()] += 1;
        self.transitions += 1;
    }
}

const TOP_ROWS: usize = 8;
/// Forecast lines shown: the worst ones.
const FORECAST_ROWS: usize = 3;

/// Sockets in TIME_WAIT and CLOSE_WAIT per (service, role, process), most first. Counted by
/// owner id in the model's own tables; only the owners that are shown get named.
fn holders(model: &Model) -> Vec<((Service, Role, String), [u64; 2])> {
    let mut by_id: HashMap<(Service, Role, OwnerId), [u64; 2]> = HashMap::new();
    for held in model.held() {
        let slot = match held.state {
            TcpState::TimeWait => 0,
            TcpState::CloseWait => 1,
            _ => continue,
        };
        let service = Service::of(held.role, &held.tuple, false);
        by_id.entry((service, held.role, held.owner)).or_default()[slot] += 1;
    }
    // Owners that differ only in their cgroup show as one process.
    let mut by: HashMap<(Service, Role, String), [u64; 2]> = HashMap::new();
    for ((service, role, id), [tw, cw]) in by_id {
        let owner = model.owner(id);
        let process = if owner.pid == 0 {
            "-".to_string()
        } else {
            format!("{} ({})", owner.comm, owner.pid)
        };
        let counts = by.entry((service, role, process)).or_default();
        counts[0] += tw;
        counts[1] += cw;
    }
    let mut rows: Vec<_> = by.into_iter().collect();
    rows.sort_by(|a, b| {
        (b.1[0] + b.1[1])
            .cmp(&(a.1[0] + a.1[1]))
            .then(a.0.cmp(&b.0))
    });
    rows.truncate(TOP_ROWS);
    // The unit, container or pod beside each process shown (read only for those).
    for ((_, _, process), _) in &mut rows {
        let pid = process
            .rsplit_once(" (")
            .and_then(|(_, p)| p.trim_end_matches(')').parse().ok())
            .unwrap_or(0);
        let label = names_of_pid(pid).label();
        if !label.is_empty() {
            process.push(' ');
            process.push_str(&label);
        }
    }
    rows
}

/// One screen; `runs_out` are the forecast lines (what runs out in how long), worst first.
pub fn render(
    collector: &Collector,
    closes: &CloseStats,
    rates: &mut Rates,
    runs_out: &[String],
) -> String {
    let now = crate::time::clock::boot_ns();
    let counters = collector.counters();
    let secs = (now.saturating_sub(rates.last_ns.max(collector.started_ns)) as f64 / 1e9).max(1e-3);
    let per_sec = |n: u64| n as f64 / secs;
    let open = collector.model.open_by_state(now);
    let mut out = format!(
        "tracer top  {}   events {:.0}/s, transitions {:.0}/s, lost {}{}   (q quits)\n\n",
        chrono::Local::now().format("%H:%M:%S"),
        per_sec(counters.events.saturating_sub(rates.last_events)),
        per_sec(rates.transitions),
        counters.lost,
        match counters.gaps {
            0 => String::new(),
            n => format!(", not seen {n}"),
        },
    );
    // Forecasts (at the measured rates and lifetimes): the worst first.
    if runs_out.is_empty() {
        out.push_str("forecast: no limit near\n");
    }
    for line in runs_out.iter().take(FORECAST_ROWS) {
        out.push_str(&format!("forecast: {line}\n"));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<12} {:>9} {:>10} {:>11}\n",
        "STATE", "SOCKETS", "ENTERED/s", "OLDEST"
    ));
    for state in OPEN_STATES {
        let o = open.get(state.index()).copied().unwrap_or_default();
        let oldest = match (o.count, o.oldest_exact) {
            (0, _) => "-".into(),
            (_, exact) => format!("{}{}", if exact { "" } else { "≥" }, human(o.oldest_ns)),
        };
        out.push_str(&format!(
            "{:<12} {:>9} {:>10.0} {:>11}\n",
            state.name(),
            o.count,
            per_sec(rates.entered[state.index()]),
            oldest
        ));
    }
    out.push_str(&format!(
        "\n{:<26} {:<8} {:<22} {:>9} {:>10}\n",
        "TIME_WAIT/CLOSE_WAIT BY", "ROLE", "PROCESS", "TIME_WAIT", "CLOSE_WAIT"
    ));
    for ((service, role, process), [tw, cw]) in holders(&collector.model) {
        out.push_str(&format!(
            "{:<26} {:<8} {:<22} {tw:>9} {cw:>10}\n",
            service.to_string(),
            role.to_string(),
            process
        ));
    }
    out.push_str(&format!(
        "\n{:<26} {:<8} {:>8} {:>10} {:>10} {:>6} {:>5}\n",
        "WHO CLOSED FIRST", "ROLE", "ENDED", "THIS-SIDE", "PEER", "BOTH", "RST"
    ));
    for row in closes.rows(GroupBy::Service).iter().take(TOP_ROWS) {
        out.push_str(&format!(
            "{:<26} {:<8} {:>8} {:>10} {:>10} {:>6} {:>5}\n  -> {}\n",
            row.service,
            row.role,
            row.ended,
            row.local_first,
            row.peer_first,
            row.simultaneous,
            row.rst_sent + row.rst_received,
            explain(row)
        ));
    }
    rates.entered = [0; 11];
    rates.transitions = 0;
    rates.last_events = counters.events;
    rates.last_ns = now;
    out
}
