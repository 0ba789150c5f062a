use std::time::Duration;

use clap::Parser;
use tracer_common::{AF_INET, AF_INET6};

use super::{
    Cli, Command, FilterArgs,
    parsers::{parse_duration, parse_port},
};

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
