//! The `warden-sidecar` binary's command line: it refuses to start without a policy
//! source, and names what is missing. (Also makes `cargo test --workspace` build the
//! binary the end-to-end tests in `tests/` drive.)

use std::process::Command;

#[test]
fn it_refuses_to_start_without_a_policy_source() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden-sidecar")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--control-plane") && err.contains("--policy-file"), "{err}");
}

#[test]
fn it_refuses_a_control_plane_without_a_service() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden-sidecar"))
        .args(["--control-plane", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--service is required"), "{out:?}");
}
