//! Which hooks follow TIME_WAIT: fentry on the timewait functions where the kernel allows it
//! (cheap: they run once per timewait event), else tp_btf on the timer tracepoints filtered by
//! `tw_timer_handler` (they run for every timer in the system), else none — the state
//! tracepoint still works, TIME_WAIT durations are then missing. Both paths send the same
//! events. `TRACER_TIMEWAIT_HOOKS=fentry|timer|auto` forces a path (for tests).
use std::fmt;

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, ProgramError},
};

use super::program;

/// The environment variable that forces a path.
pub const HOOKS_ENV: &str = "TRACER_TIMEWAIT_HOOKS";

/// (program, kernel function) of the fentry path; the hashdance one only on kernels that have
/// `inet_twsk_hashdance_schedule` (6.10+), where the first arming of the timer moved into it.
const FENTRY_SCHEDULE: (&str, &str) = ("fentry_tw_schedule", "__inet_twsk_schedule");
const FENTRY_HASHDANCE: (&str, &str) = ("fentry_tw_hashdance", "inet_twsk_hashdance_schedule");
const FENTRY_EXPIRE: (&str, &str) = ("fentry_tw_expire", "tw_timer_handler");
const FENTRY_KILL: (&str, &str) = ("fentry_tw_kill", "inet_twsk_kill");

/// The timer path's programs, each named after its tracepoint. `timer_expire_exit` only tells
/// when a request socket's handler dropped it (half-open connections, reqsk.rs).
const TIMER_TRACEPOINTS: [&str; 4] = [
    "timer_start",
    "timer_expire_entry",
    "timer_cancel",
    "timer_expire_exit",
];

/// Which path the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// fentry, else the timer hooks, else none.
    Auto,
    Fentry,
    Timer,
}

impl Choice {
    /// From [`HOOKS_ENV`]: unset or empty is `auto`; anything unknown is an error.
    pub fn from_env() -> Result<Choice> {
        match std::env::var(HOOKS_ENV) {
            Ok(v) => Choice::parse(&v),
            Err(std::env::VarError::NotPresent) => Ok(Choice::Auto),
            Err(e) => bail!("{HOOKS_ENV}: {e}"),
        }
    }

    fn parse(value: &str) -> Result<Choice> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Choice::Auto),
            "fentry" => Ok(Choice::Fentry),
            "timer" => Ok(Choice::Timer),
            other => bail!("{HOOKS_ENV}={other:?} is not one of fentry, timer, auto"),
        }
    }
}

/// The path that follows TIME_WAIT in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Path {
    /// fentry on these kernel functions.
    Fentry(Vec<&'static str>),
    /// tp_btf on the timer tracepoints; `fentry_refused` says why fentry was not used (auto).
    Timer { fentry_refused: Option<String> },
    /// Not followed, and why.
    None(String),
}

impl Path {
    pub fn followed(&self) -> bool {
        !matches!(self, Path::None(_))
    }

    /// "fentry", "timer" or "none".
    pub fn name(&self) -> &'static str {
        match self {
            Path::Fentry(_) => "fentry",
            Path::Timer { .. } => "timer",
            Path::None(_) => "none",
        }
    }
}

impl fmt::Display for Path {
    /// The line said on stderr at start.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Fentry(functions) => write!(
                f,
                "TIME_WAIT followed with fentry on {}",
                functions.join(", ")
            ),
            Path::Timer {
                fentry_refused: None,
            } => write!(
                f,
                "TIME_WAIT followed through the timer tracepoints (timer_start, \
                 timer_expire_entry, timer_cancel for tw_timer_handler)"
            ),
            Path::Timer {
                fentry_refused: Some(why),
            } => write!(
                f,
                "TIME_WAIT followed through the timer tracepoints (fentry not usable: {why})"
            ),
            Path::None(why) => write!(f, "no TIME_WAIT durations on this kernel: {why}"),
        }
    }
}

/// What the kernel offers, learnt before loading (it also decides read-only globals).
pub struct Kernel {
    /// `inet_twsk_hashdance_schedule` exists (6.10+): first starts are reported from it.
    pub hashdance: bool,
    /// Address of `tw_timer_handler` (/proc/kallsyms), needed by the timer path.
    pub tw_timer_handler: Option<u64>,
    /// Address of `reqsk_timer_handler`: the timer path then also follows request sockets.
    pub reqsk_timer_handler: Option<u64>,
}

/// Attaches one path per `choice`. A path that fails part-way is unloaded entirely before the
/// next is tried, so no half-attached path stays. Errors only when a forced path fails.
pub fn attach(ebpf: &mut Ebpf, btf: &Btf, kernel: &Kernel, choice: Choice) -> Result<Path> {
    let fentry = || {
        let mut programs = vec![FENTRY_SCHEDULE, FENTRY_EXPIRE, FENTRY_KILL];
        if kernel.hashdance {
            programs.insert(1, FENTRY_HASHDANCE);
        }
        programs
    };
    match choice {
        Choice::Fentry => attach_fentry(ebpf, btf, &fentry())
            .context("the fentry hooks for TIME_WAIT cannot be used on this kernel"),
        Choice::Timer => attach_timer(ebpf, btf, kernel)
            .context("the timer hooks for TIME_WAIT cannot be used on this kernel"),
        Choice::Auto => {
            let refused = match attach_fentry(ebpf, btf, &fentry()) {
                Ok(path) => return Ok(path),
                Err(e) => format!("{e:#}"),
            };
            match attach_timer(ebpf, btf, kernel) {
                Ok(_) => Ok(Path::Timer {
                    fentry_refused: Some(refused),
                }),
                Err(e) => Ok(Path::None(format!(
                    "fentry refused ({refused}); timer hooks: {e:#}"
                ))),
            }
        }
    }
}

fn attach_fentry(ebpf: &mut Ebpf, btf: &Btf, programs: &[(&str, &'static str)]) -> Result<Path> {
    let attached = programs
        .iter()
        .try_for_each(|&(name, function)| attach_fentry_on(ebpf, btf, (name, function)));
    if let Err(e) = attached {
        for &(name, _) in programs {
            unload_fentry(ebpf, name);
        }
        return Err(e);
    }
    Ok(Path::Fentry(programs.iter().map(|&(_, f)| f).collect()))
}

/// Loads fentry program `name` on kernel `function` and attaches it.
pub(super) fn attach_fentry_on(
    ebpf: &mut Ebpf,
    btf: &Btf,
    (name, function): (&str, &str),
) -> Result<()> {
    let program: &mut FEntry = program(ebpf, name)?.try_into()?;
    program
        .load(function, btf)
        .map_err(refusal)
        .with_context(|| format!("loading fentry on {function}"))?;
    program
        .attach()
        .with_context(|| format!("attaching fentry to {function}"))?;
    Ok(())
}

/// Detaches and closes fentry program `name`; nothing when it was not loaded.
pub(super) fn unload_fentry(ebpf: &mut Ebpf, name: &str) {
    if let Ok(program) = program(ebpf, name).and_then(|p| Ok(<&mut FEntry>::try_from(p)?)) {
        // Detaches its links and closes it; an error only says it was not loaded.
        let _ = program.unload();
    }
}

/// Loads tp_btf program `name` for `tracepoint` and attaches it.
pub(super) fn attach_tracepoint(
    ebpf: &mut Ebpf,
    btf: &Btf,
    (name, tracepoint): (&str, &str),
) -> Result<()> {
    let program: &mut BtfTracePoint = program(ebpf, name)?.try_into()?;
    program
        .load(tracepoint, btf)
        .map_err(refusal)
        .with_context(|| format!("loading the {name} program"))?;
    program
        .attach()
        .with_context(|| format!("attaching to tracepoint {tracepoint}"))?;
    Ok(())
}

/// Detaches and closes tp_btf program `name`; nothing when it was not loaded.
pub(super) fn unload_tracepoint(ebpf: &mut Ebpf, name: &str) {
    if let Ok(program) = program(ebpf, name).and_then(|p| Ok(<&mut BtfTracePoint>::try_from(p)?)) {
        let _ = program.unload();
    }
}

fn attach_timer(ebpf: &mut Ebpf, btf: &Btf, kernel: &Kernel) -> Result<Path> {
    if kernel.tw_timer_handler.is_none() {
        bail!("tw_timer_handler is not in /proc/kallsyms (needed to pick out timewait timers)");
    }
    let attached = TIMER_TRACEPOINTS
        .iter()
        .try_for_each(|&name| attach_tracepoint(ebpf, btf, (name, name)));
    if let Err(e) = attached {
        for name in TIMER_TRACEPOINTS {
            unload_tracepoint(ebpf, name);
        }
        return Err(e);
    }
    Ok(Path::Timer {
        fentry_refused: None,
    })
}

/// A load error in one line: the kernel's answer and the verifier's last words, if any (aya's
/// own message repeats the errno and dumps the whole log).
pub(super) fn refusal(e: ProgramError) -> anyhow::Error {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            // The reason, not the statistics the verifier prints after it.
            let statistics = ["processed ", "verification time", "stack depth"];
            let reason = log
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty() && !statistics.iter().any(|s| l.starts_with(s)));
            match reason.or_else(|| log.lines().rev().find(|l| !l.trim().is_empty())) {
                Some(last) => anyhow!(
                    "the kernel refused it: {io_error} (verifier: {})",
                    last.trim()
                ),
                None => anyhow!("the kernel refused it: {io_error}"),
            }
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_is_parsed_leniently_but_unknown_values_are_errors() {
        assert_eq!(Choice::parse("").unwrap(), Choice::Auto);
        assert_eq!(Choice::parse("AUTO").unwrap(), Choice::Auto);
        assert_eq!(Choice::parse(" fentry ").unwrap(), Choice::Fentry);
        assert_eq!(Choice::parse("timer").unwrap(), Choice::Timer);
        let e = Choice::parse("kprobe").unwrap_err().to_string();
        assert!(
            e.contains(HOOKS_ENV) && e.contains("fentry, timer, auto"),
            "{e}"
        );
    }

    #[test]
    fn the_start_line_names_the_path_and_why() {
        let f = Path::Fentry(vec!["__inet_twsk_schedule", "tw_timer_handler"]);
        assert_eq!(
            f.to_string(),
            "TIME_WAIT followed with fentry on __inet_twsk_schedule, tw_timer_handler"
        );
        let t = Path::Timer {
            fentry_refused: Some("EPERM".into()),
        };
        assert!(t.to_string().contains("fentry not usable: EPERM"));
        let n = Path::None("no BTF".into());
        assert_eq!(
            n.to_string(),
            "no TIME_WAIT durations on this kernel: no BTF"
        );
        assert!(!n.followed() && t.followed() && f.followed());
        assert_eq!((f.name(), t.name(), n.name()), ("fentry", "timer", "none"));
    }
}
