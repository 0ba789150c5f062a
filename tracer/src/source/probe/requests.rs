//! Which hooks follow request sockets (half-open connections, tracer-ebpf's reqsk module):
//! their SYN-ACK timer, picked out by `reqsk_timer_handler`. On the timer path of TIME_WAIT
//! the timer programs already attached do it. Where fentry follows TIME_WAIT, fentry and fexit
//! on the handler itself and the `timer_cancel` tracepoint do it (the functions that unlink a
//! request socket differ between kernels and are inlined; the tracepoint is not); should the
//! kernel refuse fexit, request-socket-only programs on all four timer tracepoints do.
use anyhow::{Context, Result};
use aya::{Btf, Ebpf, programs::FExit};

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
    let [entry, exit] = HANDLER_PROGRAMS;
    let attached = timewait::attach_fentry_on(ebpf, btf, (entry, HANDLER))
        .and_then(|()| attach_fexit_on(ebpf, btf, (exit, HANDLER)))
        .and_then(|()| timewait::attach_tracepoint(ebpf, btf, CANCEL_PROGRAM));
    if attached.is_err() {
        timewait::unload_fentry(ebpf, entry);
        if let Ok(p) = program(ebpf, exit).and_then(|p| Ok(<&mut FExit>::try_from(p)?)) {
            // Detaches its links and closes it; an error only says it was not loaded.
            let _ = p.unload();
        }
        timewait::unload_tracepoint(ebpf, CANCEL_PROGRAM.0);
    }
    attached
}

/// Loads fexit program `name` on kernel `function` and attaches it.
fn attach_fexit_on(ebpf: &mut Ebpf, btf: &Btf, (name, function): (&str, &str)) -> Result<()> {
    let program: &mut FExit = program(ebpf, name)?.try_into()?;
    program
        .load(function, btf)
        .map_err(timewait::refusal)
        .with_context(|| format!("loading fexit on {function}"))?;
    program
        .attach()
        .with_context(|| format!("attaching fexit to {function}"))?;
    Ok(())
}

fn attach_own(ebpf: &mut Ebpf, btf: &Btf) -> Result<()> {
    let attached = REQUEST_TIMER_PROGRAMS
        .iter()
        .try_for_each(|&program| timewait::attach_tracepoint(ebpf, btf, program));
    if attached.is_err() {
        for (name, _) in REQUEST_TIMER_PROGRAMS {
            timewait::unload_tracepoint(ebpf, name);
        }
    }
    attached
}
