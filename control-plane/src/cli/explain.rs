//! `wardenctl explain [-f FILE | --service S] METHOD URL [-H 'K: V']...`: runs the
//! sidecar's own `normalize` and `decide` on a described request and prints every step,
//! so the explanation cannot drift from what the sidecar does. With `-H` carrying a
//! credential, the auth step evaluates it: an API key is looked up on the control plane
//! by its hash (the key itself is never sent), a JWT is verified against the policy's
//! JWKS. A webhook signature needs the body, which explain does not have.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use warden_policy::auth::{AuthKind, Credentials, hash_key};
use warden_policy::decide::{Decision, RequestHead, check_method, decide, request_host};
use warden_policy::limits::{Limit, LimitRequest, LimitState, Quotas};
use warden_policy::normalize::{decode_escaped_slashes, normalize_path};
use warden_policy::refusal::Refusal;
use warden_policy::snapshot::{CompileContext, Mismatch, Snapshot};
use warden_policy::yaml::{build, format_duration, format_rate, parse_service};
use warden_policy::{client_ip, ipset};
use warden_proto::v1::{self as pb, GetPolicyRequest, LookupKeyRequest};

use super::{Cli, Failure, Format, Outcome, output, read_file};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Explain against a local policy file instead of the control plane's current policy.
    #[arg(short = 'f', long = "filename")]
    file: Option<String>,
    /// The service (required without -f, or when the file holds several).
    #[arg(long)]
    service: Option<String>,
    /// GET, POST, ...
    method: String,
    /// `http://host/path?query`, or `/path` with the host in `-H 'host: …'`.
    url: String,
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
    let limit_state = LimitState::default();
    let quotas = Quotas::default();
    let ctx = CompileContext { service: None, read_files: false, limits: &limit_state };
    let snapshot = Snapshot::compile(&build(&parsed.policy, &parsed.source, 0), &ctx)
        .map_err(|e| Failure::Refused(e.to_string()))?;

    let method = Method::from_bytes(a.method.as_bytes())
        .map_err(|_| Failure::Usage(format!("'{}' is not an HTTP method", a.method)))?;
    let uri: Uri = a.url.parse().map_err(|e| Failure::Usage(format!("'{}' is not a URL: {e}", a.url)))?;
    let mut headers = HeaderMap::new();
    for h in &a.headers {
        let (k, v) = h.split_once(':').ok_or_else(|| Failure::Usage(format!("-H '{h}': expected 'name: value'")))?;
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| Failure::Usage(format!("-H '{h}': bad header name")))?;
        let value =
            HeaderValue::from_str(v.trim()).map_err(|_| Failure::Usage(format!("-H '{h}': bad header value")))?;
        headers.append(name, value);
    }

    let mut steps: Vec<(String, String)> = vec![
        ("policy".into(), format!("{} ({origin})", snapshot.service)),
        ("request".into(), format!("{method} {uri}")),
    ];
    let peer = a.client_ip.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    // What the sidecar refuses before any rule (the request's own form), first one wins.
    let mut malformed = check_method(&method).err();
    let client = match client_ip::derive(&snapshot.trusted_proxies, peer, &headers) {
        Ok(client) => {
            let how = match (client.peer_trusted, client.ip == ipset::canonical(peer)) {
                (false, _) => "the connecting address".to_owned(),
                (true, true) => format!("peer {peer} is a trusted proxy; no untrusted hop in x-forwarded-for"),
                (true, false) => format!("peer {peer} is a trusted proxy; from x-forwarded-for"),
            };
            let assumed = if a.client_ip.is_none() { "; assumed, pass --client-ip" } else { "" };
            steps.push(("client ip".into(), format!("{} ({how}{assumed})", client.ip)));
            client
        }
        Err(_) => {
            steps.push((
                "client ip".into(),
                format!(
                    "refused: peer {peer} is a trusted proxy and its x-forwarded-for has a hop that is not an address"
                ),
            ));
            malformed = malformed.or(Some(Refusal::BadForwardedFor));
            client_ip::ClientIp { ip: ipset::canonical(peer), peer_trusted: true }
        }
    };
    if let Some(rule) = &snapshot.access {
        steps.push(("access".into(), access_verdict(rule, client.ip)));
    }
    let host = match request_host(&uri, &headers) {
        Ok(h) => h.map(|h| h.name().to_owned()).unwrap_or_default(),
        Err(e) => {
            malformed = malformed.or(Some(Refusal::BadHost(e)));
            String::new()
        }
    };
    steps.push(("host".into(), if host.is_empty() { "(none)".into() } else { host.clone() }));

    let outcome = match normalize_path(uri.path()) {
        _ if malformed.is_some() => malformed,
        Err(e) => Some(Refusal::BadPath(e)),
        Ok(path) => {
            let note = if path != uri.path() { format!("  (normalized from {})", uri.path()) } else { String::new() };
            steps.push(("path".into(), format!("{path}{note}")));
            let decoded = decode_escaped_slashes(&path);
            if decoded != path {
                steps.push(("routed as".into(), format!("{decoded}  (escaped slashes decoded, as the app sees them)")));
            }
            let key = snapshot.routing_key(&decoded);
            for (i, route) in snapshot.routes.iter().enumerate() {
                let verdict = match route.mismatch(&method, &host, &key, &headers) {
                    None => "MATCH".to_owned(),
                    Some(Mismatch::Path)
                        if !snapshot.case_insensitive_paths && route.path_matches_ignoring_case(&key) =>
                    {
                        "no: path differs only by case (an app that ignores case routes it here: \
                         set defaults.case_insensitive_paths)"
                            .to_owned()
                    }
                    Some(m) => format!("no: {}", m.describe()),
                };
                let matched = verdict == "MATCH";
                steps.push((format!("route {}", i + 1), format!("{}  {verdict}", route.name)));
                if matched {
                    break;
                }
            }
            let matched = snapshot.route_for(&method, &host, &key, &headers);
            let auth = matched.and_then(|r| r.auth.as_deref());
            let (creds, not_evaluated) = match auth {
                Some(p) => credentials_for(cli, p, &snapshot.service, &headers, from_control_plane).await?,
                None => (Credentials::default(), None),
            };
            let head = RequestHead {
                method: &method,
                host: &host,
                path: &path,
                headers: &headers,
                client_ip: client.ip,
                now_ms: crate::store::now_unix_ms(),
            };
            let decision = decide(&snapshot, &creds, &head);
            let matched = match &decision {
                Decision::Forward { route, .. } | Decision::Deny(_, Some(route)) => Some(*route),
                Decision::Deny(_, None) => None,
            };
            if let Some(rule) = matched.and_then(|r| r.access.as_ref()) {
                steps.push(("route access".into(), access_verdict(rule, client.ip)));
            }
            let mut unsure = None;
            if let Some(p) = auth {
                let kind = match p.kind {
                    AuthKind::ApiKey => "api_key",
                    AuthKind::Jwt(_) => "jwt",
                    AuthKind::Hmac(_) => "hmac",
                };
                let verdict = match (&decision, &not_evaluated) {
                    (Decision::Deny(Refusal::Unauthenticated { failure, .. }, _), Some(why))
                        if failure.needs_credentials() =>
                    {
                        unsure = Some(why.clone());
                        format!("not evaluated: {why}")
                    }
                    (Decision::Deny(r @ Refusal::Unauthenticated { .. }, _), _) => {
                        format!("REFUSED {} {}", r.status().as_u16(), r.code())
                    }
                    (Decision::Forward { identity: Some(id), .. }, _) => format!(
                        "PASSED as client '{}'{}",
                        id.client,
                        id.plan.as_ref().map(|p| format!(", plan '{p}'")).unwrap_or_default()
                    ),
                    (Decision::Forward { would_deny: Some(_), .. }, _) => "REFUSED (dry run, see below)".into(),
                    _ => "not reached".into(),
                };
                steps.push(("auth".into(), format!("{} ({kind}, header {}): {verdict}", p.name, p.header)));
            } else if matched.is_some() {
                steps.push(("auth".into(), "none on this route".into()));
            }
            if let Decision::Forward { route, path: new_path, would_deny, identity, .. } = &decision {
                if let Some(r) = would_deny {
                    steps.push((
                        "dry run".into(),
                        format!("would DENY {} {} (rule {})", r.status().as_u16(), r.code(), r.rule()),
                    ));
                }
                let req = LimitRequest {
                    route: &route.name,
                    identity: identity.as_ref(),
                    client_ip: client.ip,
                    headers: &headers,
                    now_ns: 0,
                    quotas: &quotas,
                };
                for l in &route.limits {
                    steps.push(("limit".into(), describe_limit(l, &req, a.sidecar.as_deref()).await));
                }
                if let Some(p) = new_path {
                    steps.push(("rewrite".into(), format!("path {path} -> {p}")));
                }
                if let Some(h) = &route.rewrite_host {
                    steps.push(("rewrite".into(), format!("host -> {}", h.to_str().unwrap_or("?"))));
                }
                describe_ops(&mut steps, "request headers", &route.request_headers);
                describe_ops(&mut steps, "response headers", &route.response_headers);
                let up = &route.upstream;
                let target = if &*up.name == "app" {
                    "the sidecar's --upstream".to_owned()
                } else {
                    up.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                };
                steps.push((
                    "upstream".into(),
                    format!("{} ({target}), timeout {}", up.name, format_duration(route.timeout)),
                ));
            }
            match decision {
                Decision::Forward { route, .. } => {
                    steps.push(("decision".into(), format!("FORWARD via route '{}'", route.name)));
                    None
                }
                Decision::Deny(_, Some(route)) if let Some(why) = &unsure => {
                    // Not knowing is not a refusal: say what happens if the credential is good.
                    steps.push((
                        "decision".into(),
                        format!("FORWARD via route '{}' if the credential is valid ({why})", route.name),
                    ));
                    None
                }
                Decision::Deny(r, _) => Some(r),
            }
        }
    };
    if let Some(r) = &outcome {
        steps.push((
            "decision".into(),
            format!(
                "DENY {} {} (rule {}): {}",
                r.status().as_u16(),
                r.code(),
                r.rule(),
                r.message(Some(&snapshot.service))
            ),
        ));
    }

    if cli.output != Format::Table {
        let rows: Vec<_> = steps.iter().map(|(k, v)| serde_json::json!({"step": k, "detail": v})).collect();
        output::structured(
            cli.output,
            &serde_json::json!({
                "service": &*snapshot.service,
                "decision": if outcome.is_some() { "deny" } else { "forward" },
                "status": outcome.as_ref().map(|r| r.status().as_u16()),
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
    match &provider.kind {
        AuthKind::Jwt(v) => {
            let why = v.unread_file.as_ref().map(|f| format!("the keys are in jwks_file {f} on the sidecar's host"));
            Ok((Credentials::default(), why))
        }
        AuthKind::Hmac(v) => Ok((
            Credentials::default(),
            Some(format!("the signature covers the body, which explain does not have (secret '{}')", v.secret)),
        )),
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
    }
}

/// A limit, the key this request counts under, and (from a running sidecar) its budget.
async fn describe_limit(l: &Limit, req: &LimitRequest<'_>, sidecar: Option<&str>) -> String {
    let plan = req.identity.and_then(|i| i.plan.as_deref());
    let Some(rate) = l.rate_for(plan) else {
        return format!("{}: does not apply (plan {} not listed, no default)", l.name, plan.unwrap_or("none"));
    };
    let (key, subject) = (l.key_of(req), l.subject_of(req));
    let mut about = format!("{}: {subject}, {} burst {}", l.name, format_rate(rate.count, rate.period), rate.burst);
    if l.global {
        about.push_str(", global");
    }
    if l.dry_run {
        about.push_str(", dry run");
    }
    let Some(admin) = sidecar else {
        return format!("{about}; budget not evaluated (--sidecar ADMIN_ADDR reads a running sidecar's)");
    };
    let url = format!(
        "http://{admin}/limits/peek?limit={}&key={}{}",
        l.name,
        hex::encode(&key),
        plan.map(|p| format!("&plan={p}")).unwrap_or_default()
    );
    match fetch_json(&url).await {
        Ok(v) if v["allowed"] == true => format!(
            "{about}; {} left at {admin}, whole again in {} s",
            v["remaining"],
            v["reset_ms"].as_u64().unwrap_or(0).div_ceil(1000)
        ),
        Ok(v) if v["allowed"] == false => format!(
            "{about}; SPENT at {admin}: the next request is refused, retry in {} s",
            v["retry_after_ms"].as_u64().unwrap_or(0).div_ceil(1000).max(1)
        ),
        Ok(v) => format!("{about}; {admin} answered {v}"),
        Err(e) => format!("{about}; could not read {admin}: {e}"),
    }
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

fn access_verdict(rule: &warden_policy::snapshot::AccessRule, ip: IpAddr) -> String {
    match rule.check(ip) {
        None => format!("{ip} allowed by {}", rule.name),
        Some(r) => format!("{ip} refused by {}", r.rule()),
    }
}

fn describe_ops(steps: &mut Vec<(String, String)>, label: &str, ops: &warden_policy::snapshot::HeaderOps) {
    let mut parts: Vec<String> =
        ops.set.iter().map(|(k, v)| format!("set {k}: {}", v.to_str().unwrap_or("?"))).collect();
    parts.extend(ops.remove.iter().map(|k| format!("remove {k}")));
    if !parts.is_empty() {
        steps.push((label.into(), parts.join("; ")));
    }
}
