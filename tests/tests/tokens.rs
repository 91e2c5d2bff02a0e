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

#[tokio::test(flavor = "multi_thread")]
async fn a_service_token_opens_only_its_own_service() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(tokens.join("..data")).unwrap();
    std::fs::write(tokens.join("orders"), "orders-token\n").unwrap();
    std::fs::write(tokens.join("billing"), "billing-token\n").unwrap();
    let tokens_arg = tokens.to_string_lossy().into_owned();
    let cp =
        ControlPlane::start_with(&dir.path().join("data"), "127.0.0.1:0", &["--sidecar-tokens-dir", &tokens_arg]).await;
    let both = format!("{BASIC}---\n{}", BASIC.replace("service: orders", "service: billing"));
    let file = write_policy(dir.path(), "p.yaml", &both);
    assert_eq!(cp.ctl(&["apply", "-f", &file]).await.code, 0);
    let (key, _) = {
        let out = cp.ctl(&["keys", "create", "--service", "orders", "--client", "acme", "-o", "json"]).await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        (v["key"].as_str().unwrap().to_owned(), ())
    };
    assert!(key.starts_with("wdn_"));

    let app = App::start("app").await;
    let start = |service: &str, token: &str| {
        let token_file = write_policy(dir.path(), &format!("{service}-{token}.token"), token);
        let state = dir.path().join(format!("state-{service}-{token}")).to_string_lossy().into_owned();
        let (url, upstream, service) = (cp.url(), app.addr.to_string(), service.to_owned());
        async move {
            Sidecar::start(&[
                "--service",
                &service,
                "--control-plane",
                &url,
                "--upstream",
                &upstream,
                "--token-file",
                &token_file,
                "--state-dir",
                &state,
            ])
            .await
        }
    };
    // billing's token names billing: it gets nothing of orders (policy, keys, secrets).
    let intruder = start("orders", "billing-token").await;
    intruder.proc.wait_for("this sidecar token is for service 'billing', not 'orders'", Duration::from_secs(10)).await;
    let client = Client::default();
    assert_eq!(client.get(&intruder.url("/orders")).await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!intruder.proc.output().contains("credentials active"), "no keys reached it");

    let own = start("orders", "orders-token").await;
    eventually("orders' own token serves orders", Duration::from_secs(5), || async {
        client.get(&own.url("/orders")).await.is_ok_and(|r| r.status == StatusCode::OK)
    })
    .await;
    let billing = start("billing", "billing-token").await;
    eventually("billing's token serves billing", Duration::from_secs(5), || async {
        client.get(&billing.url("/orders")).await.is_ok_and(|r| r.status == StatusCode::OK)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grpc_port_can_require_tls() {
    let dir = tempfile::tempdir().unwrap();
    let c = warden_e2e::tls::cert(&["localhost"]);
    let (cert, key) = warden_e2e::tls::install(dir.path(), "cp", &c);
    let cp =
        ControlPlane::start_with(&dir.path().join("data"), "127.0.0.1:0", &["--tls-cert", &cert, "--tls-key", &key])
            .await;
    let url = format!("https://localhost:{}", cp.addr.port());
    let policy = write_policy(dir.path(), "p.yaml", BASIC);
    let out = wardenctl(&url, &["--ca-file", &cert, "apply", "-f", &policy]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let plain = wardenctl(&cp.url(), &["get"]).await;
    assert_ne!(plain.code, 0, "plain gRPC to a TLS port fails: {plain:?}");
    let untrusted = wardenctl(&url, &["get"]).await;
    assert_ne!(untrusted.code, 0, "without the CA the certificate is not trusted: {untrusted:?}");

    let app = App::start("app").await;
    let state = dir.path().join("state").to_string_lossy().into_owned();
    let upstream = app.addr.to_string();
    let sidecar = Sidecar::start(&[
        "--service",
        "orders",
        "--control-plane",
        &url,
        "--control-plane-ca",
        &cert,
        "--upstream",
        &upstream,
        "--state-dir",
        &state,
    ])
    .await;
    let client = Client::default();
    eventually("the sidecar gets its policy over TLS", Duration::from_secs(5), || async {
        client.get(&sidecar.url("/orders")).await.is_ok_and(|r| r.status == StatusCode::OK)
    })
    .await;
}
