//! The structure the architecture promises, held by the compiler's neighbour: no import
//! cycle between the source files of any crate in the workspace, and a policy crate whose
//! normal dependencies hold no I/O (so `wardenctl` and the control plane never link the
//! proxy, and the decision cannot reach for a socket, a clock or a database).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use warden_e2e::imports;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn no_import_cycle_between_source_files() {
    let root = workspace();
    let mut found = Vec::new();
    let mut libs = 0;
    for member in std::fs::read_dir(&root).unwrap() {
        let dir = member.unwrap().path();
        let src = dir.join("src");
        if !src.join("lib.rs").exists() {
            continue;
        }
        libs += 1;
        let edges = imports::edges(&src).unwrap();
        for cycle in imports::cycles(&edges) {
            let files: Vec<String> =
                cycle.iter().map(|f| f.strip_prefix(&root).unwrap().display().to_string()).collect();
            found.push(files.join(" <-> "));
        }
    }
    assert!(libs >= 5, "the workspace's libraries were not found under {}", root.display());
    assert!(found.is_empty(), "import cycles between files:\n{}", found.join("\n"));
}

/// What the pure crate must never link: a runtime, an HTTP server or client, gRPC, TLS
/// I/O, a database driver, the telemetry exporter.
const NOT_IN_POLICY: [&str; 11] = [
    "tokio",
    "hyper",
    "hyper-util",
    "tonic",
    "rustls",
    "tokio-rustls",
    "rusqlite",
    "tokio-postgres",
    "sqlx",
    "opentelemetry_sdk",
    "warden-sidecar",
];

#[test]
fn the_policy_crate_links_no_io() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-e", "normal", "-p", "warden-policy", "--prefix", "none", "--offline"])
        .current_dir(workspace())
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains(&"warden-proto") && crates.contains(&"http"), "not the tree expected:\n{tree}");
    let linked: Vec<&&str> = crates.iter().filter(|c| NOT_IN_POLICY.contains(c)).collect();
    assert!(linked.is_empty(), "warden-policy links {linked:?}:\n{tree}");
}
