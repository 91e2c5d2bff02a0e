//! `wardenctl explain [-f FILE | --service S] METHOD URL [-H 'K: V']...`: runs the
//! sidecar's own `decide` on a described request and prints its trace, so the
//! explanation cannot drift from what the sidecar does: the same edge checks, routing,
//! access, auth, limits (read-only: budgets come from a running sidecar with `--sidecar`),
//! body size and rewrite. With `-H` carrying a
//! credential, the auth step evaluates it: an API key is looked up on the control plane
//! by its hash (the key itself is never sent), a JWT is verified against the policy's
//! JWKS. A webhook signature needs the body, which explain does not have.
//! `--request-id` explains a refused request from the deny log instead (`explain_recorded.rs`).

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use warden_policy::auth::{AuthKind, Credentials, hash_key};
use warden_policy::decide::{Request, decide};
use warden_policy::limits::Verdict;
use warden_policy::limits::view::{Asked, Known};
use warden_policy::snapshot::Snapshot;
use warden_policy::yaml::{build, format_duration, parse_service};
use warden_proto::v1::{self as pb, GetPolicyRequest, LookupKeyRequest};

use crate::cli::context::{Cli, Failure, Format, Outcome, read_file};
use crate::cli::{explain_recorded, output};
use crate::explain;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Explain against a local policy file instead of the control plane's current policy.
    #[arg(short = 'f', long = "filename")]
    file: Option<String>,
    /// The service (required without -f, or when the file holds several).
    #[arg(long)]
    service: Option<String>,
    /// A refused request's id (its `x-request-id`, in the deny log): replays it through the
    /// version that refused it and the current one.
    #[arg(long, conflicts_with_all = ["file", "method", "url", "headers", "client_ip", "sidecar"])]
    request_id: Option<String>,
    /// GET, POST, ...
    #[arg(required_unless_present = "request_id")]
    method: Option<String>,
    /// `http://host/path?query`, or `/path` with the host in `-H 'host: …'`.
    #[arg(required_unless_present = "request_id")]
    url: Option<String>,
    /// Request headers, `-H 'name: value'`, repeatable.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The client address to assume.
    #[arg(long)]
    client_ip: Option<IpAddr>,
    /// A running sidecar's admin address (`127.0.0.1:15000`): read each limit's remaining
    /// budget from it for this request's key.
    #[arg(long)]
    sidecar: Option<String>,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    if let Some(id) = &a.request_id {
        return explain_recorded::run(cli, id, a.service.as_deref()).await;
    }
    let (method, url) = match (&a.method, &a.url) {
        (Some(m), Some(u)) => (m.as_str(), u.as_str()),
        _ => return Err(Failure::Usage("explain METHOD URL, or explain --request-id ID".into())),
    };
    let from_control_plane = a.file.is_none();
    let (origin, parsed) = match (&a.file, &a.service) {
        (Some(f), service) => {
            let text = read_file(f)?;
            (
                format!("file {f}"),
                parse_service(f, &text, service.as_deref()).map_err(|e| Failure::Refused(e.to_string()))?,
            )
        }
        (None, Some(s)) => {
            let v =
                cli.admin().await?.get_policy(GetPolicyRequest { service: s.clone(), version: 0 }).await?.into_inner();
            let parsed = parse_service(&format!("{s}@v{}", v.version), &v.source_yaml, Some(s))
                .map_err(|e| Failure::Refused(e.to_string()))?;
            (format!("control plane, v{}", v.version), parsed)
        }
        (None, None) => {
            return Err(Failure::Usage("say which policy: -f FILE or --service NAME".into()));
        }
    };
    let snapshot =
        Snapshot::try_from(&build(&parsed.policy, &parsed.source, 0)).map_err(|e| Failure::Refused(e.to_string()))?;

    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| Failure::Usage(format!("'{method}' is not an HTTP method")))?;
    let uri: Uri = url.parse().map_err(|e| Failure::Usage(format!("'{url}' is not a URL: {e}")))?;
    let mut headers = HeaderMap::new();
    for h in &a.headers {
        let (k, v) = h.split_once(':').ok_or_else(|| Failure::Usage(format!("-H '{h}': expected 'name: value'")))?;
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| Failure::Usage(format!("-H '{h}': bad header name")))?;
        let value =
            HeaderValue::from_str(v.trim()).map_err(|_| Failure::Usage(format!("-H '{h}': bad header value")))?;
        headers.append(name, value);
    }
    let peer = a.client_ip.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let req = Request { method: &method, uri: &uri, headers: &headers, peer };
    let now_ms = crate::store::now_unix_ms();

    let route = explain::route(&snapshot, &req, &Known::default(), now_ms);
    let (creds, not_evaluated) = match route.and_then(|r| r.auth.as_deref()) {
        Some(p) => credentials_for(cli, p, &snapshot.service, &headers, from_control_plane).await?,
        None => (Credentials::default(), None),
    };
    // Limits: the budgets a running sidecar holds for the keys this request counts under.
    let mut known = Known::default();
    let mut unread = None;
    if let Some(admin) = &a.sidecar {
        let probe = Known::default();
        decide(&explain::env(&snapshot, &creds, &probe, now_ms), &req, None);
        for asked in probe.unanswered() {
            match peek(admin, &asked).await {
                Ok(Some(v)) => {
                    known.verdicts.insert((asked.limit, asked.key), v);
                }
                Ok(None) => {}
                Err(e) => unread = Some(format!("could not read {admin}: {e}")),
            }
        }
    }
    let budget_hint = match (&a.sidecar, &unread) {
        (_, Some(e)) => format!("budget not evaluated ({e})"),
        (Some(admin), None) => format!("budget not evaluated ({admin} has no counter for this key yet)"),
        (None, None) => "budget not evaluated (--sidecar ADMIN_ADDR reads a running sidecar's)".into(),
    };
    let limit_step = |detail: String| match &a.sidecar {
        Some(admin) => detail
            .replace(" left, ", &format!(" left at {admin}, "))
            .replace("SPENT:", &format!("SPENT at {admin}:"))
            .replace("budget not evaluated", &budget_hint),
        None => detail.replace("budget not evaluated", &budget_hint),
    };
    let x = explain::explain(&snapshot, &creds, &known, &req, now_ms, not_evaluated.as_deref(), &limit_step);

    let mut steps: Vec<(String, String)> = vec![("policy".into(), format!("{} ({origin})", snapshot.service))];
    steps.extend(x.steps);
    // What a running sidecar knows of the upstream's endpoints now.
    if let (Some(admin), Some(upstream)) = (&a.sidecar, &x.upstream) {
        let detail = match fetch_json(&format!("http://{admin}/config")).await {
            Ok(config) => describe_endpoints(&config, upstream),
            Err(e) => format!("not read ({admin}: {e})"),
        };
        steps.push(("endpoints".into(), detail));
    }
    steps.push(("decision".into(), x.verdict));

    if cli.output != Format::Table {
        let rows: Vec<_> = steps.iter().map(|(k, v)| serde_json::json!({"step": k, "detail": v})).collect();
        let refused = x.refused.as_ref();
        output::structured(
            cli.output,
            &serde_json::json!({
                "service": &*snapshot.service,
                "decision": x.decision,
                "status": refused.map(|r| r.status),
                "grpc_status": refused.and_then(|r| r.grpc_status),
                "code": refused.map(|r| r.code),
                "fault": refused.map(|r| r.fault),
                "steps": rows,
            }),
        );
    } else {
        let rows: Vec<Vec<String>> = steps.into_iter().map(|(k, v)| vec![k, v]).collect();
        output::table(&["STEP", "DETAIL"], &rows);
    }
    Ok(())
}

/// The credentials the auth step can be evaluated against, or why it cannot be.
async fn credentials_for(
    cli: &Cli,
    provider: &warden_policy::auth::AuthProvider,
    service: &str,
    headers: &HeaderMap,
    from_control_plane: bool,
) -> Result<(Credentials, Option<String>), Failure> {
    if let Some(why) = explain::not_checkable(provider) {
        return Ok((Credentials::default(), Some(why)));
    }
    match &provider.kind {
        AuthKind::ApiKey if !from_control_plane => {
            Ok((Credentials::default(), Some("keys are kept by the control plane: use --service instead of -f".into())))
        }
        AuthKind::ApiKey => {
            // Read exactly as the sidecar reads it; a missing or malformed one needs no lookup.
            let Ok(key) = provider.credential(headers) else { return Ok((Credentials::default(), None)) };
            // Only the hash leaves this machine.
            let hash = hash_key(key);
            let found = cli
                .admin()
                .await?
                .lookup_key(LookupKeyRequest { service: service.to_owned(), sha256: hash.0.to_vec() })
                .await;
            let keys = match found {
                Ok(info) => {
                    let k = info.into_inner();
                    vec![pb::ApiKey {
                        id: k.id,
                        sha256: hash.0.to_vec(),
                        client: k.client,
                        plan: k.plan,
                        expires_unix_ms: k.expires_unix_ms,
                        revoked_unix_ms: k.revoked_unix_ms,
                    }]
                }
                Err(s) if s.code() == tonic::Code::NotFound => Vec::new(),
                Err(s) => return Err(s.into()),
            };
            let proto = pb::Credentials { service: service.to_owned(), keys, ..Default::default() };
            let creds = Credentials::compile(&proto, None).map_err(|e| Failure::Refused(e.to_string()))?;
            Ok((creds, None))
        }
        // A JWT verified against keys the policy carries: nothing to fetch.
        AuthKind::Jwt(_) | AuthKind::Hmac(_) => Ok((Credentials::default(), None)),
    }
}

/// One key's budget as a running sidecar holds it (its `/limits/peek`, counting nothing).
/// None: the limit does not apply there.
async fn peek(admin: &str, asked: &Asked) -> Result<Option<Verdict>, String> {
    let url = format!(
        "http://{admin}/limits/peek?limit={}&key={}{}",
        asked.limit,
        hex::encode(&asked.key),
        asked.plan.as_ref().map(|p| format!("&plan={p}")).unwrap_or_default()
    );
    let v = fetch_json(&url).await?;
    if v["applies"] == false {
        return Ok(None);
    }
    let ms = |name: &str| std::time::Duration::from_millis(v[name].as_u64().unwrap_or(0));
    Ok(Some(Verdict {
        allowed: v["allowed"] == true,
        remaining: v["remaining"].as_u64().unwrap_or(0),
        retry_after: ms("retry_after_ms"),
        reset: ms("reset_ms"),
    }))
}

async fn fetch_json(url: &str) -> Result<serde_json::Value, String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: Uri = url.parse().map_err(|e| format!("{e}"))?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(3), client.get(uri))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body).trim()));
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// An upstream's endpoints as a sidecar's `/config` shows them: each address, what it has
/// outstanding, and whether outlier detection has it out of rotation.
fn describe_endpoints(config: &serde_json::Value, upstream: &str) -> String {
    let Some(up) = config["upstreams"].as_array().and_then(|u| u.iter().find(|u| u["name"] == upstream)) else {
        return format!("the sidecar has no upstream '{upstream}' (another policy version?)");
    };
    let endpoints: Vec<String> = up["endpoints"]
        .as_array()
        .map(|eps| {
            eps.iter()
                .map(|e| {
                    let h = &e["health"];
                    let state = match h["ejected_for_ms"].as_u64().unwrap_or(0) {
                        0 => "in rotation".to_owned(),
                        ms => format!("EJECTED for {}", format_duration(std::time::Duration::from_millis(ms))),
                    };
                    format!(
                        "{} {state}, {} outstanding",
                        warden_policy::text::escape(e["endpoint"].as_str().unwrap_or("?")),
                        h["outstanding"].as_u64().unwrap_or(0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if endpoints.is_empty() {
        return "none: its names resolve to no address (503 no_endpoints)".into();
    }
    endpoints.join("; ")
}
