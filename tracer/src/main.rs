//! CLI dispatch only. Errors print as one line (no backtrace) and exit 1; usage errors exit 2.
use std::process::ExitCode;

use tracer::{
    cli::{self, Cli, Command},
    commands,
    error::UsageError,
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse_valid(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    cli::logging::init(cli.verbose);
    // The collectors make their models far from the command line: set the cap once, here.
    if let Some(n) = cli.command.max_sockets() {
        tracer::model::limits::set_max_sockets(n);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => commands::run::run(args).await,
            Command::Histogram(args) => commands::histogram::run(args).await,
            Command::Closes(args) => commands::closes::run(args).await,
            Command::Top(args) => commands::top::run(args).await,
            Command::States(args) => commands::states::run(args),
            Command::Record(args) => commands::record::run(args).await,
            Command::Doctor(args) => commands::doctor::run(args).await,
            Command::Completions(args) => cli::generate::completions(&args),
            Command::Man(args) => cli::generate::man(&args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => cli::usage_error(e).exit(),
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `tracer run | head` closing the pipe is a normal way to stop, not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
