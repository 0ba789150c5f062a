//! Connection-end rows regrouped by the names of their processes' cgroups.
use super::super::closes::{CloseRow, CloseStats, GroupBy, regroup};
use crate::model::cgroup_names::names_of;

fn row(process: &str, role: &str, ended: u64, path: &str) -> CloseRow {
    CloseRow {
        service: "*".into(),
        role: role.into(),
        process: process.into(),
        ended,
        local_first: ended,
        names: names_of(path),
        ..CloseRow::default()
    }
}

#[test]
fn process_rows_regroup_by_unit_or_container_and_role() {
    let c = "c0ffee00d00d5eed0000000000000000000000000000000000000000000000aa";
    let rows = vec![
        row("nginx (10)", "server", 50, "/system.slice/nginx.service"),
        row("nginx (11)", "server", 30, "/system.slice/nginx.service"),
        row("nginx (11)", "client", 7, "/system.slice/nginx.service"),
        row(
            "app (20)",
            "client",
            40,
            &format!("/system.slice/docker-{c}.scope"),
        ),
        row("bash (30)", "client", 1, "/user.slice"),
    ];
    let by_unit = regroup(rows.clone(), GroupBy::Unit);
    let summary: Vec<(&str, &str, u64, &str)> = by_unit
        .iter()
        .map(|r| {
            (
                r.service.as_str(),
                r.role.as_str(),
                r.ended,
                r.process.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("nginx.service", "server", 80, "nginx (10)"),
            ("-", "client", 41, "app (20)"),
            ("nginx.service", "client", 7, "nginx (11)"),
        ]
    );
    assert_eq!(by_unit[0].local_first, 80);
    let by_container = regroup(rows.clone(), GroupBy::Container);
    assert_eq!(by_container[0].service, "-");
    assert_eq!(by_container[0].ended, 80);
    let boxed = by_container.iter().find(|r| r.service == c[..12]).unwrap();
    assert_eq!((boxed.ended, boxed.process.as_str()), (40, "app (20)"));
    // Other groupings are left alone; the names parse in any case.
    assert_eq!(regroup(rows.clone(), GroupBy::Process), rows);
    assert_eq!("Unit".parse(), Ok(GroupBy::Unit));
    assert_eq!("container".parse(), Ok(GroupBy::Container));
    assert!(
        "pod"
            .parse::<GroupBy>()
            .unwrap_err()
            .contains("unit or container")
    );
    // The statistics keep process rows for them.
    assert_eq!(CloseStats::default().rows(GroupBy::Unit), vec![]);
}
