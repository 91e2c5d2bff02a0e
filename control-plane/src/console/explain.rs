//! The explain form: method, host, path, headers, client IP and an optional credential
//! header → the same step-by-step answer as `wardenctl explain --service`, through the
//! service's live policy. Posted, not a link, so a credential never lands in a URL, a
//! history or a log; it is used for this one decision. Opened from a refusal group, the
//! form is filled in from one of its recorded requests.

use maud::{Markup, html};

use crate::console::page::{Req, csrf};
use crate::console::session::Session;
use crate::ops::{ControlPlane, ExplainAnswer, ExplainRequest, OpsError};
use crate::store::DenialFilter;

pub async fn page(cp: &ControlPlane, session: &Session, req: &Req, posted: bool) -> Result<Markup, OpsError> {
    let services = cp.services().await?;
    let mut r = ExplainRequest { method: "GET".into(), path: "/".into(), ..Default::default() };
    let mut credential = String::new();
    let mut recorded = None;
    if posted {
        r = ExplainRequest {
            service: req.form("service").to_owned(),
            method: req.form("method").to_owned(),
            host: req.form("host").to_owned(),
            path: req.form("path").to_owned(),
            headers: req.form("headers").lines().map(str::to_owned).collect(),
            client_ip: req.form("client_ip").to_owned(),
        };
        credential = req.form("credential").to_owned();
    } else if let Some(id) = req.query("request_id") {
        // Filled in from a refused request's record (its head headers, never a credential).
        let filter = DenialFilter {
            request_id: id.to_owned(),
            service: req.query("service").unwrap_or("").to_owned(),
            limit: 1,
            ..Default::default()
        };
        if let Some(d) = cp.denials(filter).await?.into_iter().next() {
            let x = &d.denial;
            r = ExplainRequest {
                service: d.service.clone(),
                method: x.method.clone(),
                host: x.host.clone(),
                path: x.path.clone(),
                headers: x.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect(),
                client_ip: x.client_ip.clone(),
            };
            recorded = Some(d);
        }
    }
    let answer: Option<Result<ExplainAnswer, OpsError>> = match posted {
        true => {
            let mut ask = r.clone();
            if !credential.trim().is_empty() {
                ask.headers.push(credential);
            }
            Some(cp.explain(ask).await)
        }
        false => None,
    };
    Ok(html! {
        h1 { "Explain" }
        p.muted { "Runs the sidecar's own decision on a described request through the service's live policy, step by step (as "
            code { "wardenctl explain" } "). Limit budgets live in the sidecars and are not evaluated here." }
        @if let Some(d) = &recorded {
            p { "Filled in from request " code { (d.denial.request_id) } ", refused " (d.denial.code) " by rule " (d.denial.rule)
                " at v" (d.denial.policy_version) ". Its credential was never recorded: add one below to evaluate auth. "
                "The full replay through the version that refused it: " code { "wardenctl explain --request-id " (d.denial.request_id) } }
        }
        form #explain method="post" action="/explain" {
            (csrf(session))
            div.fields {
                label { "Service " select name="service" { @for s in &services { option value=(s.service) selected[s.service == r.service] { (s.service) } } } }
                label { "Method " input type="text" name="method" value=(r.method) size="8"; }
                label { "Host " input type="text" name="host" value=(r.host) placeholder="api.example.com"; }
                label { "Path " input type="text" name="path" value=(r.path) size="40"; }
                label { "Client IP " input type="text" name="client_ip" value=(r.client_ip) placeholder="127.0.0.1"; }
            }
            label.block { "Headers, one per line (name: value)" textarea name="headers" rows="4" cols="70" { (r.headers.join("\n")) } }
            label.block { "Credential header (optional, never stored) " input type="password" name="credential" size="60" placeholder="x-api-key: …" autocomplete="off"; }
            button type="submit" { "Explain" }
        }
        @match &answer {
            Some(Ok(a)) => {
                h2 #verdict class=(a.explained.decision) { (a.explained.verdict) }
                table #steps {
                    thead { tr { th { "Step" } th { "Detail" } } }
                    tbody { @for (label, detail) in &a.steps { tr { th { (label) } td { (detail) } } } }
                }
            },
            Some(Err(e)) => p.error { (e.to_string()) },
            None => {},
        }
    })
}
