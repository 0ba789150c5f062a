//! The forecasts of [`crate::stats::forecast`] as findings (needs `--duration`): this
//! namespace's TIME_WAIT buckets against `tcp_max_tw_buckets`, and each destination's local
//! ports against `ip_local_port_range`. A forecast without enough measured lifetimes says so.
use serde_json::json;

use super::{
    findings::{
        CLOSES_MIN_TIMEWAIT, Evidence, Finding, Inputs, PORTS_PCT, Severity, TOP, TW_BUCKETS_PCT,
        process, round1, timewait_sockets,
    },
    ports::{self, PortUse},
    sysctl,
};
use crate::{
    model::Service,
    stats::forecast::{
        self, BucketForecast, Count, MIN_LIVES, MIN_TIME_WAIT_ENDS, Outlook, PortForecast, Reuse,
    },
    time::duration::human,
};

/// A destination with fewer connects in the window gets no "not enough data" notice.
const MIN_CONNECTS: u64 = 50;

fn opt1(x: Option<f64>) -> serde_json::Value {
    json!(x.map(round1))
}

/// `in 42s` / `now` / ..., for titles.
fn when(outlook: Outlook) -> String {
    match outlook {
        Outlook::In(secs) => format!("in about {}", human((secs * 1e9) as u64)),
        Outlook::Reached => "now".into(),
        _ => "at this rate".into(),
    }
}

fn outlook_evidence(e: Evidence, outlook: Outlook) -> Evidence {
    let secs = match outlook {
        Outlook::In(s) => Some(round1(s)),
        Outlook::Reached => Some(0.0),
        _ => None,
    };
    e.with("outlook", json!(outlook)["outlook"].clone())
        .with("runs_out_in_secs", json!(secs))
}

/// This namespace's TIME_WAIT buckets at the measured rate and lifetime.
pub fn buckets(i: &Inputs) -> Option<Finding> {
    let w = i.window.as_ref()?;
    let max = i.sysctls.int(sysctl::MAX_TW_BUCKETS)?.max(0) as u64;
    let t = w.turnover.netns(i.snapshot.netns)?;
    let (tw, fw2) = timewait_sockets(i.snapshot);
    let (tw0, fw20) = timewait_sockets(w.first);
    let count = Count {
        before: tw0 + fw20,
        now: tw + fw2,
        secs: w.secs,
    };
    let f = forecast::buckets(t, count, max);
    let steady = f.steady.unwrap_or(0.0);
    let severity = match f.outlook {
        Outlook::NotEnoughData if t.timewaits_taken >= CLOSES_MIN_TIMEWAIT => Severity::Notice,
        _ if f.outlook.runs_out() => Severity::Critical,
        Outlook::Fits if steady * 100.0 >= max as f64 * TW_BUCKETS_PCT as f64 => Severity::Warning,
        Outlook::Fits if steady * 2.0 >= max as f64 => Severity::Notice,
        _ => return None,
    };
    Some(bucket_finding(&f, t.timewaits_taken, severity))
}

fn bucket_finding(f: &BucketForecast, taken: u64, severity: Severity) -> Finding {
    let rate = round1(f.timewaits_per_sec);
    let title = match (f.outlook, f.mean_time_wait_secs, f.steady) {
        (Outlook::NotEnoughData, _, _) | (_, None, _) | (_, _, None) => format!(
            "TIME_WAIT bucket forecast: not enough data ({} TIME_WAIT lifetimes ended during \
             the run, {MIN_TIME_WAIT_ENDS} needed) at {rate} new timewaits/s",
            f.time_wait_ends
        ),
        (outlook, Some(life), Some(steady)) => format!(
            "{}: {rate} timewaits/s x {:.1}s measured TIME_WAIT = {:.0} at once, \
             tcp_max_tw_buckets is {}",
            match outlook {
                Outlook::Fits => "TIME_WAIT buckets fit".to_string(),
                Outlook::NotGrowing => "The TIME_WAIT table will overflow".to_string(),
                o => format!("The TIME_WAIT table overflows {}", when(o)),
            },
            life,
            steady,
            f.max_tw_buckets
        ),
    };
    let evidence = Evidence::default()
        .with("timewaits_taken", taken)
        .with("window_secs", f.count.secs)
        .with("timewaits_per_sec", rate)
        .with("time_wait_ends_measured", f.time_wait_ends)
        .with("ended_early", f.ended_early)
        .with("mean_time_wait_secs", opt1(f.mean_time_wait_secs))
        .with("p50_time_wait_secs", opt1(f.p50_time_wait_secs))
        .with("p90_time_wait_secs", opt1(f.p90_time_wait_secs))
        .with("steady_timewaits", json!(f.steady.map(f64::round)))
        .with("timewaits_before", f.count.before)
        .with("timewaits_now", f.count.now)
        .with("growth_per_sec", round1(f.count.growth_per_sec()))
        .with(sysctl::MAX_TW_BUCKETS, f.max_tw_buckets);
    let evidence =
        outlook_evidence(evidence, f.outlook).with("overflow_per_sec", opt1(f.overflow_per_sec));
    let advice = match (f.outlook, f.overflow_per_sec) {
        (Outlook::NotEnoughData, _) => format!(
            "A forecast needs measured TIME_WAIT lifetimes: run `tracer doctor --duration` for \
             longer than one TIME_WAIT lasts (over 60 s), while the traffic goes on. Fewer than \
             {MIN_TIME_WAIT_ENDS} ended here."
        ),
        (o, Some(over)) if o.runs_out() => format!(
            "Then the kernel destroys closing connections at once instead of keeping them in \
             TIME_WAIT (\"TCP: time wait bucket table overflow\"): about {:.1} connections a \
             second skip TIME_WAIT and TCPTimeWaitOverflow rises by as much. Reuse connections \
             (keep-alive, pooling) so fewer close, or raise tcp_max_tw_buckets above {:.0}.",
            over,
            f.steady.unwrap_or(0.0)
        ),
        _ => "Assumes the rate stays as measured. Reusing connections (keep-alive, pooling) \
              lowers it; raising tcp_max_tw_buckets is cheap."
            .into(),
    };
    Finding {
        id: "timewait-forecast",
        severity,
        title,
        evidence,
        advice,
    }
}

/// How tcp_tw_reuse applies to `dest` here.
fn reuse_for(i: &Inputs, dest: &Service) -> Reuse {
    let reuse = i.sysctls.int(sysctl::TW_REUSE).unwrap_or(0);
    let stamps = i.sysctls.int(sysctl::TIMESTAMPS).unwrap_or(1) != 0;
    let on = reuse == 1 || (reuse == 2 && dest.addr.is_loopback());
    if on && stamps {
        Reuse::On
    } else {
        let ms = i.sysctls.int(sysctl::TW_REUSE_DELAY).unwrap_or(1000);
        Reuse::Off {
            delay_secs: ms.max(0) as f64 / 1e3,
        }
    }
}

/// The local-port forecast of each destination this namespace connected to, worst first.
pub fn ports(i: &Inputs, now: &[PortUse]) -> Vec<Finding> {
    let Some(w) = i.window.as_ref() else {
        return Vec::new();
    };
    let (lo, hi) = ports::range(i);
    let size = u64::from(hi - lo) + 1;
    let before = ports::port_use_in(w.first, (lo, hi));
    let in_use = |list: &[PortUse], dest: &Service| {
        list.iter().find(|p| p.dest == *dest).map_or(0, |p| p.ports)
    };
    let namespace = w.turnover.netns(i.snapshot.netns);
    let mut found: Vec<(Severity, f64, Finding)> = Vec::new();
    for (dest, d) in w.turnover.destinations(i.snapshot.netns) {
        let count = Count {
            before: in_use(&before, &dest),
            now: in_use(now, &dest),
            secs: w.secs,
        };
        let f = forecast::ports((dest, d), namespace, count, size, reuse_for(i, &dest));
        let steady = f.steady.unwrap_or(0.0);
        let severity = match f.outlook {
            Outlook::NotEnoughData
                if d.connects >= MIN_CONNECTS && count.now * 100 >= size * 10 =>
            {
                Severity::Notice
            }
            o if o.runs_out() => Severity::Critical,
            Outlook::Fits if steady * 100.0 >= (size * PORTS_PCT) as f64 => Severity::Warning,
            _ => continue,
        };
        let fallback = now.iter().find(|p| p.dest == dest);
        let (pid, comm) = match (f.owner, fallback) {
            (Some(o), _) => (o.pid, o.comm.to_string()),
            (None, Some(p)) => (p.pid, p.comm.clone()),
            (None, None) => (0, String::new()),
        };
        let urgency = match f.outlook {
            Outlook::Reached => 0.0,
            Outlook::In(s) => s,
            _ => f64::MAX,
        };
        let finding = port_finding(&f, (lo, hi), process(pid, &comm), pid, severity);
        found.push((severity, urgency, finding));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    found.into_iter().take(TOP).map(|(_, _, f)| f).collect()
}

fn port_finding(
    f: &PortForecast,
    (lo, hi): (u16, u16),
    who: String,
    pid: u32,
    severity: Severity,
) -> Finding {
    let dest = f.destination;
    let rate = round1(f.connects_per_sec);
    let title = match (f.outlook, f.port_hold_secs, f.steady) {
        (Outlook::NotEnoughData, _, _) | (_, None, _) | (_, _, None) => format!(
            "Local ports towards {dest} ({who}): not enough data to forecast ({} connection \
             lives and {} TIME_WAIT lifetimes measured, {MIN_LIVES} and {MIN_TIME_WAIT_ENDS} \
             needed)",
            f.lives_measured, f.time_wait_ends
        ),
        (outlook, Some(hold), Some(steady)) => format!(
            "{} ({who}): {rate} connects/s x {hold:.1}s per port = {steady:.0} ports needed, the \
             range has {}",
            match outlook {
                Outlook::Fits => format!("Local ports towards {dest} fit"),
                Outlook::NotGrowing => format!("connect() to {dest} will run out of local ports"),
                o => format!("connect() to {dest} runs out of local ports {}", when(o)),
            },
            f.range_size
        ),
    };
    let evidence = Evidence::default()
        .with("destination", dest.to_string())
        .with("process", who.clone())
        .with("pid", pid)
        .with("window_secs", f.count.secs)
        .with("connects_per_sec", rate)
        .with(
            "connection_life_secs",
            json!(f.connection_life_secs.map(|s| (s * 1e3).round() / 1e3)),
        )
        .with(
            "time_wait_share",
            json!(f.time_wait_share.map(|s| round1(s * 100.0) / 100.0)),
        )
        .with("time_wait_secs", opt1(f.time_wait_secs))
        .with("time_wait_measured_for", json!(f.time_wait_measured_for))
        .with("port_hold_secs", opt1(f.port_hold_secs))
        .with("steady_ports", json!(f.steady.map(f64::round)))
        .with("local_ports_before", f.count.before)
        .with("local_ports_now", f.count.now)
        .with("growth_per_sec", round1(f.count.growth_per_sec()))
        .with(sysctl::PORT_RANGE, format!("{lo} {hi}"))
        .with("range_size", f.range_size);
    let evidence = outlook_evidence(evidence, f.outlook)
        .with(
            "steady_with_tw_reuse",
            json!(f.steady_with_tw_reuse.map(f64::round)),
        )
        .with(
            "steady_with_pooling",
            json!(f.steady_with_pooling.map(f64::ceil)),
        );
    Finding {
        id: "ports-forecast",
        severity,
        title,
        evidence,
        advice: port_advice(f),
    }
}

fn port_advice(f: &PortForecast) -> String {
    if f.outlook == Outlook::NotEnoughData {
        return "A forecast needs measured lifetimes: run `tracer doctor --duration` for longer \
                than a port stays taken (over 60 s when this side keeps TIME_WAITs) while the \
                traffic goes on."
            .into();
    }
    let mut advice = String::from(
        "When the range is used up, connect() fails with EADDRNOTAVAIL (\"Cannot assign \
         requested address\"). Assumes the connect rate stays as measured.",
    );
    if let Some(pool) = f.steady_with_pooling {
        let pool = match pool.ceil() {
            n if n <= 1.0 => "a single connection".to_string(),
            n => format!("about {n:.0} connections"),
        };
        advice.push_str(&format!(
            " Pooling (keep-alive) would need {pool}: the connects/s times the {:.3}s each \
             connection lives, and no TIME_WAIT.",
            f.connection_life_secs.unwrap_or(0.0)
        ));
    }
    match (f.steady_with_tw_reuse, f.time_wait_share) {
        (Some(reuse), _) => advice.push_str(&format!(
            " tcp_tw_reuse = 1 (with tcp_timestamps = 1 on both ends) would let connect() take \
             over a TIME_WAIT port after tcp_tw_reuse_delay: about {:.0} ports, {}.",
            reuse,
            if reuse < f.range_size as f64 {
                "within the range"
            } else {
                "still more than the range"
            }
        )),
        (None, Some(s)) if s > 0.0 => advice.push_str(
            " tcp_tw_reuse is already on for it: the measured TIME_WAIT lifetimes include its \
             early ends.",
        ),
        _ => {}
    }
    advice
}
