//! The control plane's and `wardenctl`'s command lines: usage errors exit 2 with help,
//! unreadable token files stop the control plane before it listens. (Also makes `cargo
//! test --workspace` build the binaries the end-to-end tests in `tests/` drive.)

use std::process::Command;

#[test]
fn wardenctl_usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_wardenctl")).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_wardenctl")).args(["--server", "not a url", "get"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn the_control_plane_refuses_an_unreadable_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden-control-plane"))
        .args(["--listen", "127.0.0.1:0", "--admin-token-file", "/nonexistent/admin.token"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--admin-token-file"), "{out:?}");
}
