//! `--policy-file` mode: no control plane; the file is reloaded when it changes, and a
//! file that does not validate leaves the previous policy serving.

use std::time::Duration;

use http::StatusCode;
use warden_e2e::{App, Client, Sidecar, eventually, write_policy};

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_file_is_served_and_reloaded_and_a_bad_edit_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file =
        write_policy(dir.path(), "p.yaml", "service: orders\nroutes:\n  - name: a\n    match: { path_prefix: /a }\n");
    let app = App::start("app").await;
    let sidecar = Sidecar::start(&["--policy-file", &file, "--upstream", &app.addr.to_string()]).await;
    let client = Client::default();
    let status = |path: &'static str| {
        let (client, url) = (client.clone(), sidecar.url(path));
        async move { client.get(&url).await.map(|r| r.status).ok() }
    };
    eventually("/a routes", Duration::from_secs(5), || async { status("/a").await == Some(StatusCode::OK) }).await;
    assert_eq!(status("/b").await, Some(StatusCode::NOT_FOUND));

    write_policy(dir.path(), "p.yaml", "service: orders\nroutes:\n  - name: b\n    match: { path_prefix: /b }\n");
    eventually("/b routes after the edit", Duration::from_secs(5), || async {
        status("/b").await == Some(StatusCode::OK)
    })
    .await;
    assert_eq!(status("/a").await, Some(StatusCode::NOT_FOUND));

    write_policy(dir.path(), "p.yaml", "service: orders\nroutes:\n  - name: c\n    match: { path_prefx: /c }\n");
    sidecar.proc.wait_for("policy file refused", Duration::from_secs(5)).await;
    // The reason follows on its own line (the log may be read a line at a time).
    sidecar.proc.wait_for("p.yaml:4:14", Duration::from_secs(5)).await;
    assert_eq!(status("/b").await, Some(StatusCode::OK), "the previous policy keeps serving");
}
