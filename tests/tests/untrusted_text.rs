//! Text that others wrote, on its way to an operator's terminal, and reports that claim
//! to be another sidecar. Commit messages, authors, request paths, deny records, NACK
//! errors and instance names carrying terminal escapes (retitle the window, clear the
//! screen, a bare CR that overwrites the line, a bidi override) come out of `wardenctl`
//! tables escaped and visible; `-o json` keeps what was stored. A sidecar token speaks
//! only for its service, and a report stream only for a connected instance it opened as.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use warden_e2e::stack::BASIC;
use warden_e2e::{ControlPlane, Ctl, Proc, Stack, eventually, write_policy};
use warden_proto::v1::sidecar_message::Kind;
use warden_proto::v1::sidecar_service_client::SidecarServiceClient;
use warden_proto::v1::{DenyRecord, Hello, Nack, ReportBatch, SidecarMessage, SnapshotPush};

/// Retitles the window, clears the screen, returns to the line's start to overwrite it,
/// and reverses what follows.
const PLANTED: &str = "ship it\x1b]0;pwned\x07\x1b[2J\rall good \u{202e}gnp.exe";
const SHOWN: &str = "ship it\\x1b]0;pwned\\x07\\x1b[2J\\rall good \\u{202e}gnp.exe";

/// Fails if a terminal would act on anything in `out` but line breaks.
fn assert_inert(what: &str, out: &Ctl) {
    assert_eq!(out.code, 0, "{what}: {out:?}");
    let bad: Vec<char> = out.stdout.chars().filter(|&c| c != '\n' && warden_policy::text::is_control(c)).collect();
    assert!(bad.is_empty(), "{what} printed raw control characters {bad:?}:\n{}", out.stdout);
}

fn json(out: &Ctl) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

/// Presents a sidecar token.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("authorization", t.clone());
        }
        Ok(req)
    }
}

type Raw = SidecarServiceClient<InterceptedService<Channel, Bearer>>;

/// A hand-made sidecar client: it sends whatever the test says, as a stolen token could.
async fn raw_client(cp: &ControlPlane, token: Option<&str>) -> Raw {
    let channel = Channel::from_shared(cp.url()).unwrap_or_else(|e| panic!("{e}"));
    let channel = channel.connect().await.unwrap_or_else(|e| panic!("connect to the control plane: {e}"));
    let token = token.map(|t| format!("Bearer {t}").parse().unwrap_or_else(|e| panic!("{e}")));
    SidecarServiceClient::with_interceptor(channel, Bearer(token))
}

/// Says Hello as `service`/`instance` and keeps the stream open (hold the sender).
async fn hello(
    client: &mut Raw,
    service: &str,
    instance: &str,
) -> Result<(mpsc::Sender<SidecarMessage>, tonic::Streaming<SnapshotPush>), tonic::Status> {
    let (tx, rx) = mpsc::channel(8);
    let hello = Hello { service: service.into(), instance: instance.into(), schema: 99, ..Default::default() };
    tx.send(SidecarMessage { kind: Some(Kind::Hello(hello)) })
        .await
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let pushes = client.subscribe(ReceiverStream::new(rx)).await?.into_inner();
    Ok((tx, pushes))
}

/// The stored deny record with this request id, as `wardenctl denials -o json` shows it.
async fn find_denial(cp: &ControlPlane, request_id: &str) -> Option<serde_json::Value> {
    let v = json(&cp.ctl(&["denials", "-o", "json"]).await);
    v["denials"].as_array().and_then(|d| d.iter().find(|d| d["request_id"] == request_id).cloned())
}

fn batch(service: &str, instance: &str, denials: Vec<DenyRecord>) -> ReportBatch {
    ReportBatch { service: service.into(), instance: instance.into(), denials, ..Default::default() }
}

fn denial(request_id: &str) -> DenyRecord {
    DenyRecord {
        unix_ms: warden_control_plane::store::now_unix_ms(),
        request_id: request_id.into(),
        rule: "no-route".into(),
        code: "no_route".into(),
        status: 404,
        method: "GET".into(),
        path: "/forged".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wardenctl_shows_planted_escapes_escaped_and_json_keeps_the_values() {
    let s = Stack::start(BASIC).await;

    // A commit message and author with escapes: stored as given, shown escaped.
    let file = write_policy(s.dir.path(), "v2.yaml", &BASIC.replace("300ms", "2s"));
    let author = "mallory\x1b[8m";
    let out = s.cp.ctl(&["apply", "-f", &file, "-m", PLANTED, "--author", author]).await;
    assert_inert("apply", &out);
    let history = s.cp.ctl(&["history", "orders"]).await;
    assert_inert("history", &history);
    assert!(history.stdout.contains(SHOWN) && history.stdout.contains("mallory\\x1b[8m"), "{}", history.stdout);
    let exact = json(&s.cp.ctl(&["history", "orders", "-o", "json"]).await);
    assert_eq!(exact["versions"][0]["message"], PLANTED, "-o json keeps the message as written");
    assert_eq!(exact["versions"][0]["author"], author);
    let list = s.cp.ctl(&["get"]).await;
    assert_inert("get", &list);
    assert!(list.stdout.contains(SHOWN), "{}", list.stdout);

    // A request path with a bidi override and a C1 control (raw UTF-8 in the request line)
    // reaches the deny log escaped on receipt.
    let resp = s
        .sidecar
        .raw(
            "GET /nope/\u{202e}\u{9b}2J HTTP/1.1\r\nHost: x\r\nX-Request-Id: bidi-1\r\nConnection: close\r\n\r\n"
                .as_bytes(),
        )
        .await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    eventually("the deny record reaches the control plane", Duration::from_secs(5), || async {
        find_denial(&s.cp, "bidi-1").await.is_some()
    })
    .await;
    assert_eq!(find_denial(&s.cp, "bidi-1").await.unwrap()["path"], "/nope/\\u{202e}\\u{9b}2J");

    // A hand-made sidecar (same token model as a real one) plants escapes in a NACK error
    // and in every text field of a deny record, and sends a 3 KiB host.
    let mut raw = raw_client(&s.cp, None).await;
    let (tx, _pushes) = hello(&mut raw, "orders", "forger-1").await.expect("a valid Hello is admitted");
    let nack = Nack { version: 2, error: PLANTED.into() };
    tx.send(SidecarMessage { kind: Some(Kind::Nack(nack)) }).await.unwrap();
    let record = DenyRecord {
        client_id: PLANTED.into(),
        client_ip: "\x1b[31m203.0.113.9".into(),
        rule: "\rrule".into(),
        route: "\u{2066}route".into(),
        host: "h".repeat(3 << 10),
        ..denial("planted\x07-1")
    };
    let (btx, brx) = mpsc::channel(4);
    btx.send(batch("orders", "forger-1", vec![record])).await.unwrap();
    let mut replies = raw.report(ReceiverStream::new(brx)).await.expect("report as a connected instance").into_inner();
    replies.message().await.expect("a quota reply");
    eventually("the planted record is stored", Duration::from_secs(5), || async {
        find_denial(&s.cp, "planted\\x07-1").await.is_some()
    })
    .await;
    let stored = find_denial(&s.cp, "planted\\x07-1").await.unwrap();
    assert_eq!(stored["client_id"], SHOWN, "stored escaped: a JSON reader is safe too");
    assert_eq!(stored["client_ip"], "\\x1b[31m203.0.113.9");
    assert!(stored["host"].as_str().unwrap().len() <= 2048, "long fields are cut to 2 KiB");
    let denials = s.cp.ctl(&["denials"]).await;
    assert_inert("denials", &denials);
    assert!(denials.stdout.contains("/nope/\\u{202e}\\u{9b}2J"), "{}", denials.stdout);
    assert_inert("denials --group", &s.cp.ctl(&["denials", "--group"]).await);

    eventually("the NACK is recorded", Duration::from_secs(5), || async {
        let v = json(&s.cp.ctl(&["status", "-o", "json"]).await);
        v["sidecars"].as_array().is_some_and(|a| a.iter().any(|sc| sc["nack_error"] == SHOWN))
    })
    .await;
    let status = s.cp.ctl(&["status"]).await;
    assert_inert("status", &status);
    assert!(status.stdout.contains(&format!("v2: {SHOWN}")), "{}", status.stdout);

    // An instance name is a name: refused by the control plane and by the sidecar itself.
    let refused = hello(&mut raw, "orders", "orders-2\x1b]0;pwned\x07").await.map(|_| ()).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let status = json(&s.cp.ctl(&["status", "-o", "json"]).await);
    let instances: Vec<&str> =
        status["sidecars"].as_array().unwrap().iter().filter_map(|sc| sc["instance"].as_str()).collect();
    assert_eq!(instances, ["forger-1", "orders-1"], "the refused Hello registered nothing");
    let args =
        ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--service", "orders", "--instance", "orders-2\r\x1b[2K"];
    let mut bad = Proc::spawn("warden-sidecar", &args);
    let exited = bad.wait_exit(Duration::from_secs(10)).await.expect("the sidecar refuses to start");
    assert!(!exited.success());
    // The exit can beat the last lines through the pipe: wait for them, not on them.
    bad.wait_for("--instance", Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_cannot_speak_for_another_service_or_instance() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    std::fs::write(tokens.join("orders"), "orders-token\n").unwrap();
    std::fs::write(tokens.join("billing"), "billing-token\n").unwrap();
    let tokens_arg = tokens.to_string_lossy().into_owned();
    let cp =
        ControlPlane::start_with(&dir.path().join("data"), "127.0.0.1:0", &["--sidecar-tokens-dir", &tokens_arg]).await;
    let both = format!("{BASIC}---\n{}", BASIC.replace("service: orders", "service: billing"));
    assert_eq!(cp.ctl(&["apply", "-f", &write_policy(dir.path(), "p.yaml", &both)]).await.code, 0);

    let mut orders = raw_client(&cp, Some("orders-token")).await;
    let (_control, _pushes) = hello(&mut orders, "orders", "orders-1").await.expect("orders-1 connects");
    let report = |client: &Raw, first: ReportBatch| {
        let (tx, rx) = mpsc::channel(4);
        let mut client = client.clone();
        async move {
            tx.send(first).await.unwrap();
            client.report(ReceiverStream::new(rx)).await.map(|r| (tx, r.into_inner()))
        }
    };

    // billing's token cannot report for orders.
    let billing = raw_client(&cp, Some("billing-token")).await;
    let err = report(&billing, batch("orders", "orders-1", vec![denial("forged-service")])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    // orders' token cannot invent an instance that is not connected.
    let err = report(&orders, batch("orders", "ghost", vec![denial("forged-ghost")])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    // A stream opened as orders-1 may not switch to another instance or service midway.
    for (service, instance) in [("orders", "orders-2"), ("billing", "orders-1")] {
        let (tx, mut replies) =
            report(&orders, batch("orders", "orders-1", vec![denial("real-1")])).await.expect("orders-1 reports");
        replies.message().await.expect("reply to the first batch");
        tx.send(batch(service, instance, vec![denial("forged-switch")])).await.unwrap();
        let err = replies.message().await.expect_err("a batch naming another sidecar ends the stream");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    }

    let stored = || async {
        let v = json(&cp.ctl(&["denials", "-o", "json"]).await);
        v["denials"].as_array().cloned().unwrap_or_default()
    };
    eventually("orders-1's own records are stored", Duration::from_secs(5), || async {
        stored().await.iter().filter(|d| d["request_id"] == "real-1").count() == 2
    })
    .await;
    let all = stored().await;
    assert!(all.iter().all(|d| d["request_id"] == "real-1" && d["instance"] == "orders-1"), "{all:?}");
}
