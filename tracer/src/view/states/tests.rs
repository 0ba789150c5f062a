//! The text and JSON of `tracer states`.

use crate::{
    model::{Owner, TcpState, Tuple},
    source::snapshot::{
        Age, DEFAULT_EPHEMERAL_PORTS, SnapSocket, Snapshot,
        summary::{StatesBy, Summary, summarize},
    },
    time::clock::WallClock,
    view::states::{age_text, json, text},
};

fn summary(by: StatesBy) -> Summary {
    let tuple =
        |lport, rport| Tuple::new([127, 0, 0, 1].into(), lport, [127, 0, 0, 1].into(), rport);
    let owner = Some(Owner {
        pid: 4242,
        comm: "server".into(),
        cgroup_id: 0,
    });
    let sockets = vec![
        SnapSocket {
            state: TcpState::Listen,
            tuple: tuple(8080, 0),
            inode: 1,
            uid: 0,
            owner,
            age: Age::AtLeast(0),
        },
        SnapSocket {
            state: TcpState::CloseWait,
            tuple: tuple(8080, 40000),
            inode: 2,
            uid: 0,
            owner,
            age: Age::AtLeast(0),
        },
        SnapSocket {
            state: TcpState::TimeWait,
            tuple: tuple(40001, 8080),
            inode: 0,
            uid: 0,
            owner: None,
            age: Age::Exact(12_000_000_000),
        },
    ];
    let snap = Snapshot {
        taken_ns: 1,
        netns: 7,
        sockets,
        unreadable_processes: 3,
        ephemeral_ports: DEFAULT_EPHEMERAL_PORTS,
    };
    summarize(&snap, by)
}

#[test]
fn ages_say_whether_they_are_exact() {
    assert_eq!(age_text(Some(Age::Exact(12_000_000_000))), "12.0s");
    assert_eq!(age_text(Some(Age::AtLeast(3_000_000_000))), "≥ 3.00s");
    assert_eq!(age_text(Some(Age::AtLeast(0))), "unknown");
    assert_eq!(age_text(None), "-");
}

#[test]
fn json_has_totals_oldest_ages_and_rows() {
    let v = json(
        &summary(StatesBy::Service),
        StatesBy::Service,
        &WallClock::now(),
    );
    assert_eq!(
        v["states"],
        json!({"CLOSE_WAIT": 1, "TIME_WAIT": 1, "LISTEN": 1})
    );
    assert_eq!(
        v["oldest"]["TIME_WAIT"],
        json!({"age_ns": 12_000_000_000u64, "exact": true})
    );
    assert_eq!(v["oldest"]["CLOSE_WAIT"]["exact"], json!(false));
    assert_eq!(v["owners_partial"], json!(true));
    let server = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "server")
        .unwrap();
    assert_eq!(server["service"], "127.0.0.1:8080");
    assert_eq!(
        (server["pid"].as_u64(), server["comm"].as_str()),
        (Some(4242), Some("server"))
    );
    assert_eq!(server["states"], json!({"CLOSE_WAIT": 1}));
    let client = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "client")
        .unwrap();
    assert_eq!(
        (client["service"].as_str(), client["pid"].as_u64()),
        (Some("127.0.0.1:8080"), Some(0))
    );
}

#[test]
fn text_names_the_partial_owners_and_the_by_state_view_has_no_rows() {
    let text_of = |by| text(&summary(by), by, &WallClock::now());
    let t = text_of(StatesBy::Service);
    assert!(
        t.contains("owners are partial") && t.contains("3 processes"),
        "{t}"
    );
    assert!(t.contains("server (4242)") && t.contains("12.0s"), "{t}");
    let t = text_of(StatesBy::State);
    assert!(t.contains("CLOSE_WAIT") && !t.contains("SERVICE"), "{t}");
    let t = text_of(StatesBy::Process);
    assert!(t.contains("4242") && t.contains("process '-'"), "{t}");
}
