//! Messages about the run itself (what was attached, warnings, errors) go through the `log`
//! facade to stderr: info and above by default, `-v` adds tracer's debug lines, `-vv` its trace
//! lines and the libraries' debug lines, and `RUST_LOG`
//! (e.g. `RUST_LOG=tracer=debug`) overrides both. Under systemd, whose journal reads a `<N>`
//! syslog priority at the start of each stderr line, each line carries its level that way.
//! Below trace, nothing is logged per event.
use std::io::Write;

use log::{Level, LevelFilter};

/// Starts the logger; call once, before anything logs.
pub fn init(verbose: u8) {
    // -v is about tracer itself; the libraries' (aya's) debug lines come with -vv.
    let (ours, theirs) = match verbose {
        0 => (LevelFilter::Info, LevelFilter::Info),
        1 => (LevelFilter::Debug, LevelFilter::Info),
        2 => (LevelFilter::Trace, LevelFilter::Debug),
        _ => (LevelFilter::Trace, LevelFilter::Trace),
    };
    let journal = stderr_is_journal();
    let mut builder = env_logger::Builder::new();
    match std::env::var("RUST_LOG") {
        Ok(spec) => builder.parse_filters(&spec),
        Err(_) => builder.filter_level(theirs).filter_module("tracer", ours),
    };
    builder.format(move |out, record| {
        let text = record.args();
        if journal {
            return writeln!(out, "<{}>{text}", priority(record.level()));
        }
        match record.level() {
            Level::Info => writeln!(out, "{text}"),
            Level::Warn => writeln!(out, "warning: {text}"),
            Level::Error => writeln!(out, "error: {text}"),
            Level::Debug => writeln!(out, "debug: {text}"),
            Level::Trace => writeln!(out, "trace: {text}"),
        }
    });
    // A second init (only in tests) keeps the first logger.
    let _ = builder.try_init();
}

/// The syslog priority the journal files a line under.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stderr is the journal; the
/// variable alone is not enough (a child may have had stderr redirected), so compare them.
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    // SAFETY: fstat fills the zeroed struct for a valid descriptor or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    dev.parse::<u64>().ok() == Some(st.st_dev) && ino.parse::<u64>().ok() == Some(st.st_ino)
}

#[cfg(test)]
mod tests {
    use super::priority;
    use log::Level;

    #[test]
    fn levels_map_to_syslog_priorities() {
        let p: Vec<u8> = [Level::Error, Level::Warn, Level::Info, Level::Debug]
            .into_iter()
            .map(priority)
            .collect();
        assert_eq!(p, [3, 4, 6, 7]);
    }
}
