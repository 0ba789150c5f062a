//! Which hooks follow request sockets (half-open connections, tracer-ebpf's reqsk module):
//! their SYN-ACK timer, picked out by `reqsk_timer_handler`. On the timer path of TIME_WAIT
//! the timer programs already attached do it; where fentry follows TIME_WAIT, the
//! request-socket-only programs are attached to the same timer tracepoints (the functions that
//! end a request socket differ between kernels and can be inlined; the tracepoints cannot).
use anyhow::{Context, Result};
use aya::{Btf, Ebpf, programs::BtfTracePoint};

use super::{program, timewait};

/// (program, tracepoint) of the request sockets' own timer programs, for the fentry path.
/// `timer_expire_exit` is the timer path's own program, which only looks at request sockets.
const REQUEST_TIMER_PROGRAMS: [(&str, &str); 4] = [
    ("reqsk_timer_start", "timer_start"),
    ("reqsk_timer_expire_entry", "timer_expire_entry"),
    ("reqsk_timer_cancel", "timer_cancel"),
    ("timer_expire_exit", "timer_expire_exit"),
];

/// How request sockets are followed in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requests {
    /// By the timer programs of the TIME_WAIT timer path.
    WithTimewaitTimers,
    /// By their own timer programs, beside fentry for TIME_WAIT.
    OwnTimers,
    /// Not followed, and why.
    None(String),
}

/// Attaches what request sockets need beside the TIME_WAIT `path`; a failure only means they
/// are not followed (said on stderr), never that tracing stops.
pub fn attach(ebpf: &mut Ebpf, btf: &Btf, handler: Option<u64>, path: &timewait::Path) -> Requests {
    let requests = match (handler, path) {
        (None, _) => Requests::None("reqsk_timer_handler is not in /proc/kallsyms".into()),
        (Some(_), timewait::Path::Timer { .. }) => Requests::WithTimewaitTimers,
        (Some(_), timewait::Path::Fentry(_)) => match attach_own(ebpf, btf) {
            Ok(()) => Requests::OwnTimers,
            Err(e) => Requests::None(format!("{e:#}")),
        },
        (Some(_), timewait::Path::None(why)) => Requests::None(why.clone()),
    };
    match &requests {
        Requests::None(why) => log::warn!(
            "half-open connections (request sockets) not followed: {why}; SYN_RECV steps have \
             no duration"
        ),
        Requests::OwnTimers => log::debug!(
            "request sockets followed through the timer tracepoints (reqsk_timer_handler)"
        ),
        Requests::WithTimewaitTimers => {}
    }
    requests
}

fn attach_own(ebpf: &mut Ebpf, btf: &Btf) -> Result<()> {
    let attached = REQUEST_TIMER_PROGRAMS
        .iter()
        .try_for_each(|&(name, tracepoint)| {
            let program: &mut BtfTracePoint = program(ebpf, name)?.try_into()?;
            program
                .load(tracepoint, btf)
                .map_err(timewait::refusal)
                .with_context(|| format!("loading the {name} program"))?;
            program
                .attach()
                .with_context(|| format!("attaching to tracepoint {tracepoint}"))?;
            Ok(())
        });
    if attached.is_err() {
        for (name, _) in REQUEST_TIMER_PROGRAMS {
            if let Ok(program) =
                program(ebpf, name).and_then(|p| Ok(<&mut BtfTracePoint>::try_from(p)?))
            {
                // Detaches its links and closes it; an error only says it was not loaded.
                let _ = program.unload();
            }
        }
    }
    attached
}
