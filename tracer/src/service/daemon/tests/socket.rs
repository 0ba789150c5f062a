//! The socket file: private, and kept only by a live daemon.
use std::{
    fs,
    os::unix::{fs::FileTypeExt, net::UnixListener},
};

use super::fixtures::{TempDir, mode};
use crate::service::daemon::socket::bind;

#[test]
fn the_socket_file_is_private_and_only_a_live_daemon_keeps_it() {
    let dir = TempDir::new("file");
    let path = dir.0.join("run").join("t.sock");
    let bound = bind(&path).unwrap();
    assert!(fs::metadata(&path).unwrap().file_type().is_socket());
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);

    let err = bind(&path).unwrap_err().to_string();
    let pid = std::process::id();
    let expected = format!(
        "another tracer daemon (pid {pid}) already serves {}",
        path.display()
    );
    assert!(err.contains(&expected), "{err}");
    drop(bound);
    assert!(!path.exists(), "removed with its daemon");

    // A dead daemon's file, nobody accepting on it, is replaced.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let bound = bind(&path).unwrap();
    // A file that replaced ours is not removed with ours.
    fs::remove_file(&path).unwrap();
    let other = bind(&path).unwrap();
    drop(bound);
    assert!(path.exists());
    drop(other);
    assert!(!path.exists());

    fs::write(&path, "data").unwrap();
    let err = bind(&path).unwrap_err().to_string();
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "data");
}
