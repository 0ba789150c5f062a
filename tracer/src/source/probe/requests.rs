//! Which hooks follow request sockets (half-open connections, tracer-ebpf's reqsk module):
//! their SYN-ACK timer, picked out by `reqsk_timer_handler`. On the timer path of TIME_WAIT
//! the timer programs already attached do it. Where fentry follows TIME_WAIT, fentry and fexit
//! on the handler itself and the `timer_cancel` tracepoint do it (the functions that unlink a
//! request socket differ between kernels and are inlined; the tracepoint is not); should the
//! kernel refuse fexit, request-socket-only programs on all four timer tracepoints do.
use anyhow::{Context, Result};
use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, FExit},
};

use super::{program, timewait};

/// The handler hooked by [`HANDLER_PROGRAMS`].
const HANDLER: &str = "reqsk_timer_handler";

/// fentry and fexit programs on [`HANDLER`], beside [`CANCEL_PROGRAM`].
const HANDLER_PROGRAMS: [&str; 2] = ["fentry_reqsk_timer", "fexit_reqsk_timer"];

/// (program, tracepoint): the deletion of a request socket's timer, the end of an unlinked one.
const CANCEL_PROGRAM: (&str, &str) = ("reqsk_timer_cancel", "timer_cancel");

/// (program, tracepoint) of the request sockets' own timer programs, for the fentry path when
/// [`HANDLER_PROGRAMS`] cannot be used. `timer_expire_exit` is the timer path's own program,
/// which only looks at request sockets.
const REQUEST_TIMER_PROGRAMS: [(&str, &str); 4] = [
    ("reqsk_timer_start", "timer_start"),
    ("reqsk_timer_expire_entry", "timer_expire_entry"),
    CANCEL_PROGRAM,
    ("timer_expire_exit", "timer_expire_exit"),
];

/// How request sockets are followed in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requests {
    /// By the timer programs of the TIME_WAIT timer path.
    WithTimewaitTimers,
    /// By fentry and fexit on their timer's handler, and the `timer_cancel` tracepoint.
    Handler,
    /// By their own programs on the timer tracepoints, beside fentry for TIME_WAIT (the
    /// kernel refused the handler's hooks: why).
    OwnTimers(String),
    /// Not followed, and why.
    None(String),
}

/// Attaches what request sockets need beside the TIME_WAIT `path`; a failure only means they
/// are not followed (said on stderr), never that tracing stops.
pub fn attach(ebpf: &mut Ebpf, btf: &Btf, handler: Option<u64>, path: &timewait::Path) -> Requests {
    let requests = match (handler, path) {
        (None, _) => Requests::None("reqsk_timer_handler is not in /proc/kallsyms".into()),
        (Some(_), timewait::Path::Timer { .. }) => Requests::WithTimewaitTimers,
        (Some(_), timewait::Path::Fentry(_)) => match attach_handler(ebpf, btf) {
            Ok(()) => Requests::Handler,
            Err(refused) => match attach_own(ebpf, btf) {
                Ok(()) => Requests::OwnTimers(format!("{refused:#}")),
                Err(e) => Requests::None(format!("{e:#}")),
            },
        },
        (Some(_), timewait::Path::None(why)) => Requests::None(why.clone()),
    };
    match &requests {
        Requests::None(why) => log::warn!(
            "half-open connections (request sockets) not followed: {why}; SYN_RECV steps have \
             no duration"
        ),
        Requests::OwnTimers(refused) => log::debug!(
            "request sockets followed through the timer tracepoints (reqsk_timer_handler; \
             fentry and fexit on it not usable: {refused})"
        ),
        Requests::Handler => log::debug!(
            "request sockets followed with fentry and fexit on {HANDLER} and the timer_cancel \
             tracepoint"
        ),
        Requests::WithTimewaitTimers => {}
    }
    requests
}

/// fentry and fexit on the handler, and the cancel program; all or none.
fn attach_handler(ebpf: &mut Ebpf, btf: &Btf) -> Result<()> {
    let attached = (|| -> Result<()> {
        let [entry, exit] = HANDLER_PROGRAMS;
        let program_entry: &mut FEntry = program(ebpf, entry)?.try_into()?;
        program_entry
            .load(HANDLER, btf)
            .map_err(timewait::refusal)
            .with_context(|| format!("loading fentry on {HANDLER}"))?;
        program_entry
            .attach()
            .with_context(|| format!("attaching fentry to {HANDLER}"))?;
        let program_exit: &mut FExit = program(ebpf, exit)?.try_into()?;
        program_exit
            .load(HANDLER, btf)
            .map_err(timewait::refusal)
            .with_context(|| format!("loading fexit on {HANDLER}"))?;
        program_exit
            .attach()
            .with_context(|| format!("attaching fexit to {HANDLER}"))?;
        attach_tracepoint(ebpf, btf, CANCEL_PROGRAM)
    })();
    if attached.is_err() {
        let [entry, exit] = HANDLER_PROGRAMS;
        if let Ok(p) = program(ebpf, entry).and_then(|p| Ok(<&mut FEntry>::try_from(p)?)) {
            // Detaches its links and closes it; an error only says it was not loaded.
            let _ = p.unload();
        }
        if let Ok(p) = program(ebpf, exit).and_then(|p| Ok(<&mut FExit>::try_from(p)?)) {
            let _ = p.unload();
        }
        unload_tracepoint(ebpf, CANCEL_PROGRAM.0);
    }
    attached
}

/// Loads and attaches one tp_btf program.
fn attach_tracepoint(ebpf: &mut Ebpf, btf: &Btf, (name, tracepoint): (&str, &str)) -> Result<()> {
    let program: &mut BtfTracePoint = program(ebpf, name)?.try_into()?;
    program
        .load(tracepoint, btf)
        .map_err(timewait::refusal)
        .with_context(|| format!("loading the {name} program"))?;
    program
        .attach()
        .with_context(|| format!("attaching to tracepoint {tracepoint}"))?;
    Ok(())
}

/// Detaches and closes a tp_btf program; nothing when it was not loaded.
fn unload_tracepoint(ebpf: &mut Ebpf, name: &str) {
    if let Ok(program) = program(ebpf, name).and_then(|p| Ok(<&mut BtfTracePoint>::try_from(p)?)) {
        let _ = program.unload();
    }
}

fn attach_own(ebpf: &mut Ebpf, btf: &Btf) -> Result<()> {
    let attached = REQUEST_TIMER_PROGRAMS
        .iter()
        .try_for_each(|&program| attach_tracepoint(ebpf, btf, program));
    if attached.is_err() {
        for (name, _) in REQUEST_TIMER_PROGRAMS {
            unload_tracepoint(ebpf, name);
        }
    }
    attached
}
