//! Just enough of the systemd unit's and the DaemonSet's syntax to read the settings the tests
//! check: `Key=value` lines of the unit, string lists and scalars of the YAML.
use std::collections::BTreeSet;

use super::{DAEMONSET, INSTALLED_BIN, UNIT};

// --- The systemd unit -------------------------------------------------------------------------

/// `Key=value` settings of the unit, in order (comments and section headers left out).
pub fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The one value of `key` in the unit.
pub fn unit_value(unit: &str, key: &str) -> String {
    let values: Vec<String> = unit_settings(unit)
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{key}= in {UNIT}: {values:?}");
    values.into_iter().next().unwrap()
}

/// The unit's ExecStart, split into arguments after the program (it uses no quoting).
pub fn unit_exec_args(unit: &str) -> Vec<String> {
    let exec = unit_value(unit, "ExecStart");
    assert!(
        !exec.contains(['"', '\'', '\\', '$', '%']),
        "ExecStart should need no quoting or expansion: {exec}"
    );
    let mut words = exec.split_whitespace().map(str::to_string);
    assert_eq!(words.next().as_deref(), Some(INSTALLED_BIN), "{exec}");
    words.collect()
}

/// A capability list setting as a set of names (`CAP_BPF`, ...).
pub fn unit_caps(unit: &str, key: &str) -> BTreeSet<String> {
    unit_value(unit, key)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

// --- The DaemonSet (just enough YAML for the keys used) ---------------------------------------

/// The string list under `key:`, written either as a flow sequence on its line
/// (`args: ["run", ...]`) or as a block of `- item` lines below it. `key` must occur once.
pub fn yaml_list(yaml: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let prefix = format!("{key}:");
    let found: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim_start().starts_with(&prefix))
        .collect();
    assert_eq!(found.len(), 1, "`{key}:` lines in {DAEMONSET}");
    let line = lines[found[0]];
    let indent = line.len() - line.trim_start().len();
    let rest = line.trim_start()[prefix.len()..].trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        return serde_json::from_str(rest)
            .unwrap_or_else(|e| panic!("`{key}:` is not a list of strings: {rest} ({e})"));
    }
    let mut items = Vec::new();
    for line in &lines[found[0] + 1..] {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.len() - trimmed.len() < indent || !trimmed.starts_with("- ") {
            break;
        }
        let item = trimmed[2..].split(" #").next().unwrap().trim();
        items.push(item.trim_matches('"').trim_matches('\'').to_string());
    }
    items
}

/// The scalar after the one `key:` line, unquoted.
pub fn yaml_scalar(yaml: &str, key: &str) -> String {
    let prefix = format!("{key}:");
    let values: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix(&prefix))
        .map(|v| v.trim().trim_matches('"'))
        .collect();
    assert_eq!(values.len(), 1, "`{key}:` lines in {DAEMONSET}: {values:?}");
    values[0].to_string()
}
