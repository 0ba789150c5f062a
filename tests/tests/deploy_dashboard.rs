//! The Grafana dashboard under deploy/ stays in step with the binary: it imports into Grafana,
//! queries only metrics, labels and label values that a real `tracer run --metrics` exports, and
//! its PromQL parses (by promtool). Every wait is bounded; every process started is stopped.
use std::{collections::BTreeSet, process::Command, time::Duration};

use serde_json::Value;
use tracer_tests::{
    deploy::{
        metrics::real_exposition,
        promql::{self, dashboard_queries, ident_char, load_dashboard, substitute_variables},
        run_bounded, text,
    },
    tools,
};

#[test]
fn dashboard_is_an_importable_grafana_dashboard() {
    let d = load_dashboard();
    let schema = d["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(
        d["__inputs"]
            .as_array()
            .expect("__inputs")
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "a DS_PROMETHEUS input for import"
    );
    let vars = d["templating"]["list"].as_array().expect("templating");
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    assert_eq!(
        var("DS_PROMETHEUS").map(|v| &v["type"]),
        Some(&Value::from("datasource")),
        "a DS_PROMETHEUS data source variable (for file provisioning)"
    );
    assert_eq!(
        var("instance").map(|v| &v["type"]),
        Some(&Value::from("query"))
    );

    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "duplicate id: {title}"
        );
        let (x, w) = (p["gridPos"]["x"].as_u64(), p["gridPos"]["w"].as_u64());
        assert!(
            matches!((x, w), (Some(x), Some(w)) if w > 0 && x + w <= 24),
            "gridPos of {title}"
        );
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        }
    }
    for wanted in [
        "tracer_state_duration_seconds_bucket",
        "tracer_sockets_in_state",
        "tracer_connection_ends_total",
        "tracer_transitions_total",
        "tracer_events_lost_total",
    ] {
        assert!(
            dashboard_queries(&d)
                .iter()
                .any(|q| q.expr.contains(wanted)),
            "no panel shows {wanted}"
        );
    }
}

#[test]
fn dashboard_queries_only_what_tracer_exports() {
    let queries = dashboard_queries(&load_dashboard());
    let exposition = real_exposition();
    for q in &queries {
        let refs = promql::refs(&q.expr);
        let at = format!("{}: {}", q.place, q.expr);
        assert!(!refs.metrics.is_empty(), "no tracer metric in {at}");
        for metric in &refs.metrics {
            assert!(
                exposition.names.contains(metric),
                "{metric} is not exported ({at}); exported: {:?}",
                exposition.names
            );
        }
        for label in &refs.grouping {
            assert!(exposition.knows_label(label), "label {label} in {at}");
        }
        for (label, op, value) in &refs.matchers {
            assert!(exposition.knows_label(label), "label {label} in {at}");
            // Literal values (not a Grafana variable, not a real regex) must be real values.
            let plain = |v: &str| !v.is_empty() && v.chars().all(|c| ident_char(c) || c == '.');
            let alternatives: Vec<&str> = match op.as_str() {
                "=" | "!=" => vec![value.as_str()],
                "=~" | "!~" => value.split('|').collect(),
                _ => panic!("matcher operator {op} in {at}"),
            };
            if matches!(label.as_str(), "instance" | "job")
                || !alternatives.iter().all(|v| plain(v))
            {
                continue;
            }
            for v in alternatives {
                assert!(
                    exposition.labels[label].contains(v),
                    "{label}=\"{v}\" never occurs ({at}); values seen: {:?}",
                    exposition.labels[label]
                );
            }
        }
        // Legend placeholders name labels the series carry.
        for part in q.legend.split("{{").skip(1) {
            let label = part.split("}}").next().unwrap().trim();
            assert!(
                exposition.knows_label(label),
                "legend {{{{{label}}}}} in {at}"
            );
        }
    }
}

#[test]
fn dashboard_promql_parses() {
    let promtool = "promtool";
    tools::require(promtool, "prometheus");
    // Each query as a recording rule: `promtool check rules` parses every expression.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, q) in dashboard_queries(&load_dashboard()).iter().enumerate() {
        let expr = serde_json::to_string(&substitute_variables(&q.expr)).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query{n}\n        expr: {expr}\n"
        ));
    }
    let path =
        std::env::temp_dir().join(format!("tracer-dashboard-{}.rules.yml", std::process::id()));
    std::fs::write(&path, &rules).unwrap();
    let out = run_bounded(
        Command::new(promtool).arg("check").arg("rules").arg(&path),
        Duration::from_secs(30),
    );
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}{}\n{rules}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
