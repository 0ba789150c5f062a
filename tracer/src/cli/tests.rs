use std::time::Duration;

use clap::Parser;
use tracer_common::{AF_INET, AF_INET6};

use super::{Cli, Command, FilterArgs};
use crate::{commands::options::parse_port, time::duration::parse_duration};

#[test]
fn durations_accept_the_usual_spellings() {
    assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
    assert!(parse_duration("0").is_err());
    assert!(parse_duration("soon").unwrap_err().contains("'soon'"));
}

#[test]
fn ports_are_checked() {
    assert_eq!(parse_port("443"), Ok(443));
    assert!(parse_port("0").is_err());
    assert!(parse_port("70000").is_err());
}

#[test]
fn filter_config_carries_family_and_ports() {
    let args = FilterArgs {
        ipv6: true,
        ports: vec![80, 443],
        ..Default::default()
    };
    let c = args.to_config().unwrap();
    assert_eq!(c.family, AF_INET6);
    assert!(c.accepts(AF_INET6, 80, 5000));
    assert!(c.accepts(AF_INET6, 5000, 443));
    assert!(!c.accepts(AF_INET6, 5000, 5001));
    assert!(!c.accepts(AF_INET, 80, 5000));
}

#[test]
fn metrics_address_is_optional_with_a_loopback_default() {
    let run = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
        Ok(Command::Run(run)) => Ok(run.metrics),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.kind()),
    };
    assert_eq!(run(&["tracer", "run"]), Ok(None));
    assert_eq!(
        run(&["tracer", "run", "--metrics"]),
        Ok(Some("127.0.0.1:9464".parse().unwrap()))
    );
    assert_eq!(
        run(&["tracer", "run", "--metrics", "--quiet"]),
        Ok(Some("127.0.0.1:9464".parse().unwrap()))
    );
    assert_eq!(
        run(&["tracer", "run", "--metrics", "0.0.0.0:9464"]),
        Ok(Some("0.0.0.0:9464".parse().unwrap()))
    );
    assert_eq!(
        run(&["tracer", "run", "--metrics=[::1]:9100"]),
        Ok(Some("[::1]:9100".parse().unwrap()))
    );
    assert_eq!(
        run(&["tracer", "run", "--metrics", "localhost"]),
        Err(clap::error::ErrorKind::ValueValidation)
    );
}

#[test]
fn cli_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn since_reads_local_times_dates_and_rfc3339_and_refuses_the_future() {
    use chrono::{Local, TimeZone, Timelike};

    use crate::commands::options::since_at;
    let now = Local.with_ymd_and_hms(2026, 11, 28, 14, 5, 12).unwrap();
    let at = |s: &str| since_at(s, now).map(|s| s.at);
    let today = |h, m, sec| Local.with_ymd_and_hms(2026, 11, 28, h, m, sec).unwrap();
    assert_eq!(at("14:00"), Ok(today(14, 0, 0)));
    assert_eq!(at(" 14:00:30 "), Ok(today(14, 0, 30)));
    assert_eq!(at("2026-11-28 13:00"), Ok(today(13, 0, 0)));
    assert_eq!(at("2026-11-28T13:00:05"), Ok(today(13, 0, 5)));
    // A day earlier whatever the local time zone, so never in the future.
    let utc = at("2026-11-27T10:00:00Z").unwrap();
    assert_eq!(utc.timestamp(), 1_795_773_600);
    assert_eq!(
        at("2026-11-27T10:00:00.5+02:00").unwrap().nanosecond(),
        500_000_000
    );

    let err = at("15:00").unwrap_err();
    assert!(
        err.contains("still to come") && err.contains("2026-11-27 15:00"),
        "{err}"
    );
    let err = at("2030-01-01T00:00:00Z").unwrap_err();
    assert!(err.contains("in the future"), "{err}");
    for bad in ["soon", "25:00", "14h", "", "2026-13-01 10:00"] {
        let err = at(bad).unwrap_err();
        assert!(err.contains("is not a time like"), "{bad}: {err}");
    }
}

#[test]
fn window_and_since_only_go_where_the_daemon_is_asked() {
    let check = |args: &[&str]| {
        let cli = Cli::try_parse_from([&["tracer"], args].concat()).map_err(|e| e.to_string())?;
        cli.command.check_window()
    };
    assert_eq!(check(&["closes", "--window", "5m"]), Ok(()));
    assert_eq!(
        check(&["histogram", "--state", "established", "--since", "00:00"]),
        Ok(())
    );
    assert_eq!(check(&["closes", "--duration", "5s"]), Ok(()));
    for (args, other) in [
        (
            &["closes", "--window", "5m", "--duration", "10s"][..],
            "--duration",
        ),
        (&["closes", "--since", "00:00", "--from", "x.trc"], "--from"),
        (
            &[
                "histogram",
                "--state",
                "timewait",
                "--window",
                "1h",
                "--no-daemon",
            ],
            "--no-daemon",
        ),
    ] {
        let err = check(args).unwrap_err();
        assert!(
            err.contains("asks the running `tracer run`") && err.contains(other),
            "{args:?}: {err}"
        );
    }
    let err = check(&["closes", "--window", "5m", "--since", "00:00"]).unwrap_err();
    assert!(err.contains("cannot be used with"), "{err}");
    let err = check(&["closes", "--window", "0"]).unwrap_err();
    assert!(err.contains("longer than zero"), "{err}");
}
