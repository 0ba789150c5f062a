//! Shell completions and man pages, generated from the clap definitions in [`super`]: what a
//! package installs (`cargo xtask deb` runs these from the binary it packages).
use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;

use super::Cli;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write tracer.1 and one page per subcommand (tracer-run.1, ...) into DIR, created if
    /// missing, instead of tracer.1 to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The completion script for `args.shell`, on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<()> {
    // Rendered in memory first: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "tracer", &mut script);
    write_stdout(&script)
}

/// tracer.1 on stdout, or every page into `args.dir`, each path on stdout.
pub fn man(args: &ManArgs) -> Result<()> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = &args.dir else {
        return write_stdout(&render(&cmd)?);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    let list: String = written
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    write_stdout(list.as_bytes())
}

/// `cmd`'s page, then one per visible subcommand (clap names them tracer-run, ...).
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let path = dir.join(format!(
        "{}.1",
        cmd.get_display_name().unwrap_or(cmd.get_name())
    ));
    std::fs::write(&path, render(cmd)?).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

fn render(cmd: &clap::Command) -> Result<Vec<u8>> {
    let mut page = Vec::new();
    Man::new(cmd.clone())
        .date(commit_date())
        .source(format!("tracer {}", super::VERSION))
        .manual("tracer manual")
        .render(&mut page)
        .context("rendering the man page")?;
    Ok(page)
}

/// The date of the commit the binary was built from ("" when unknown), so that the pages of
/// one commit are the same whenever they are generated.
fn commit_date() -> &'static str {
    let commit = env!("TRACER_GIT_COMMIT");
    match commit.split_once(' ') {
        Some((_, date)) if date.len() == 10 && date.as_bytes()[4] == b'-' => date,
        _ => "",
    }
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    #[test]
    fn version_names_the_commit() {
        let version = Cli::command().render_version();
        let rest = version
            .strip_prefix(&format!("tracer {} (", env!("CARGO_PKG_VERSION")))
            .unwrap_or_else(|| panic!("{version:?}"));
        let commit = rest.trim_end().strip_suffix(')').expect("closing paren");
        // "abc1234 2026-12-07" from git, or "unknown commit" without it.
        assert!(
            commit == "unknown commit" || commit_date().len() == 10,
            "{commit:?}"
        );
    }

    #[test]
    fn completions_cover_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tracer", &mut script);
            let script = String::from_utf8(script).unwrap();
            for sub in [
                "run",
                "histogram",
                "closes",
                "top",
                "states",
                "record",
                "doctor",
            ] {
                assert!(script.contains(sub), "{shell}: {sub} missing");
            }
        }
        let err = Cli::try_parse_valid(["tracer", "completions", "tcsh"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn man_writes_a_page_per_visible_subcommand() {
        let dir = std::env::temp_dir().join(format!("tracer-man-{}", std::process::id()));
        let mut cmd = Cli::command().disable_help_subcommand(true);
        cmd.build();
        let mut written = Vec::new();
        write_pages(&cmd, &dir, &mut written).unwrap_err(); // the folder does not exist yet
        std::fs::create_dir_all(&dir).unwrap();
        write_pages(&cmd, &dir, &mut written).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let page = std::fs::read_to_string(dir.join("tracer-histogram.1")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(names[0], "tracer.1");
        assert!(names.contains(&"tracer-run.1".to_string()), "{names:?}");
        assert!(names.contains(&"tracer-completions.1".to_string()));
        assert!(
            !names
                .iter()
                .any(|n| n.contains("man") || n.contains("help"))
        );
        assert!(page.contains(".TH tracer-histogram 1 "), "{page}");
        assert!(page.contains(&format!("\"tracer {}\"", crate::cli::VERSION)));
        assert!(page.contains("TIME_WAIT"));
    }
}
