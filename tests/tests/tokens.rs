//! Bearer tokens on the control plane: `wardenctl` needs the admin token, sidecars the
//! sidecar token, and neither token opens the other's door.

use std::time::Duration;

use http::StatusCode;
use warden_e2e::stack::BASIC;
use warden_e2e::{App, Client, ControlPlane, Sidecar, eventually, wardenctl, write_policy};

#[tokio::test(flavor = "multi_thread")]
async fn the_control_plane_checks_admin_and_sidecar_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let admin_file = write_policy(dir.path(), "admin.token", "admin-secret\n");
    let sidecar_file = write_policy(dir.path(), "sidecar.token", "sidecar-secret\n");
    let wrong_file = write_policy(dir.path(), "wrong.token", "guess\n");
    let policy = write_policy(dir.path(), "p.yaml", BASIC);
    let cp = ControlPlane::start_with(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &["--admin-token-file", &admin_file, "--sidecar-token-file", &sidecar_file],
    )
    .await;
    assert!(!cp.proc.output().contains("ACCEPTING EVERY CALLER"), "{}", cp.proc.output());

    let out = cp.ctl(&["apply", "-f", &policy]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("missing or wrong bearer token"), "{}", out.stderr);
    let out = wardenctl(&cp.url(), &["--token", "sidecar-secret", "get"]).await;
    assert_eq!(out.code, 1, "a sidecar token cannot call admin methods: {out:?}");
    let out = wardenctl(&cp.url(), &["--token", "admin-secret", "apply", "-f", &policy]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let app = App::start("app").await;
    let sidecar_args = |token: &str| {
        vec![
            "--service".to_owned(),
            "orders".into(),
            "--control-plane".into(),
            cp.url(),
            "--upstream".into(),
            app.addr.to_string(),
            "--token-file".into(),
            token.to_owned(),
            "--state-dir".into(),
            dir.path().join(token.replace('/', "_")).to_string_lossy().into_owned(),
        ]
    };
    let args = sidecar_args(&wrong_file);
    let wrong = Sidecar::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    wrong.proc.wait_for("bearer token", Duration::from_secs(10)).await;
    let client = Client::default();
    assert_eq!(client.get(&wrong.url("/orders")).await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);

    let args = sidecar_args(&sidecar_file);
    let right = Sidecar::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    eventually("the sidecar with the right token serves", Duration::from_secs(5), || async {
        client.get(&right.url("/orders")).await.is_ok_and(|r| r.status == StatusCode::OK)
    })
    .await;
    assert_eq!(client.get(&wrong.url("/orders")).await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
}
