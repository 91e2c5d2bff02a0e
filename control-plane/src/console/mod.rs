//! The console: a small web UI served by the control plane on its `--http` port (unless
//! `--console off`), translation only like the gRPC server: each page reads or changes
//! through the operations layer. Server-rendered HTML (`page.rs`, maud, which escapes
//! everything it interpolates) with one script for the live charts and the bar hover.
//!
//! - `session.rs`: sign-in with the admin or the read-only token, signed session cookies,
//!   CSRF tokens.
//! - `fleet.rs`: services and sidecars; `service.rs`: versions, diff, rollback, routes,
//!   live traffic; `review.rs`: the refusal review queue and its marks; `rollouts.rs`:
//!   shadow and canary status, promote and abort; `explain.rs`: the explain form.
//!
//! Every request but the sign-in page and the assets needs a session; every POST but the
//! sign-in needs the session's CSRF token, and one that changes something an admin
//! session. Changes are recorded with the name signed in with, like a CLI change.

mod explain;
mod fleet;
pub mod page;
mod review;
mod rollouts;
mod service;
pub mod session;

use http::{Method, StatusCode, header};
use maud::html;

use crate::console::page::{Nav, Req, Resp, error, html as page_html, layout, redirect, respond, with_cookie};
use crate::console::session::{MAX_NAME, Session, Sessions};
use crate::ops::{ControlPlane, OpsError};

const CSS: &str = include_str!("assets/console.css");
const READ_ONLY: &str = "This session is read-only: sign in with the admin token to change anything.";
const JS: &str = include_str!("assets/console.js");

/// The console of one control plane.
pub struct Console {
    pub sessions: Sessions,
}

impl Console {
    /// Answers one console request (anything but the probes and `/metrics`).
    pub async fn handle(&self, cp: &ControlPlane, method: &Method, req: &Req) -> Resp {
        let open = self.sessions.open();
        if method != Method::GET && method != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, None, open, "The console answers GET and POST only.");
        }
        // Open (no admin token), anyone who reaches the port may change policy; a page on
        // another site must not reach it through a name that resolves here (DNS rebinding).
        if open && !local_host(&req.host) {
            return error(
                StatusCode::FORBIDDEN,
                None,
                open,
                "Without --admin-token-file the console answers only at an IP address or localhost.",
            );
        }
        match (method, req.path.as_str()) {
            (&Method::GET, "/assets/console.css") => return asset("text/css; charset=utf-8", CSS),
            (&Method::GET, "/assets/console.js") => return asset("text/javascript; charset=utf-8", JS),
            (&Method::POST, "/login") => return self.sign_in(cp, req).await,
            _ => {}
        }
        let Some(session) = self.sessions.session(cp, &req.cookies).await else {
            return match (method, req.path.as_str()) {
                (&Method::GET, "/") => sign_in_page(StatusCode::OK, open, None),
                (&Method::GET, _) => redirect("/"),
                _ => {
                    error(StatusCode::UNAUTHORIZED, None, open, "Sign in first: this session has ended or never began.")
                }
            };
        };
        if method == Method::POST && !session.csrf_ok(req.form("csrf")) {
            return error(
                StatusCode::FORBIDDEN,
                Some(&session),
                open,
                "This form is stale or was not sent by the console (its CSRF token does not match): reload the page and try again.",
            );
        }
        // Explaining and signing out change nothing; every other POST does.
        let changes = method == Method::POST && !matches!(req.path.as_str(), "/explain" | "/logout");
        if changes && !session.can_change() {
            return error(StatusCode::FORBIDDEN, Some(&session), open, READ_ONLY);
        }
        let out = self.route(cp, &session, method, req).await;
        match out {
            Ok(resp) => resp,
            Err(e) => {
                let status = match &e {
                    OpsError::Invalid(_) => StatusCode::BAD_REQUEST,
                    OpsError::NotFound(_) => StatusCode::NOT_FOUND,
                    OpsError::Precondition(_) => StatusCode::CONFLICT,
                    OpsError::Store(_) | OpsError::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                error(status, Some(&session), open, &e.to_string())
            }
        }
    }

    async fn route(&self, cp: &ControlPlane, s: &Session, method: &Method, req: &Req) -> Result<Resp, OpsError> {
        let open = self.sessions.open();
        let show = |title: &str, nav: Nav, body| page_html(StatusCode::OK, layout(title, Some(s), open, nav, body));
        let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        let change = || match s.can_change() {
            true => Ok(()),
            false => Err(OpsError::Invalid(
                "this session is read-only: sign in with the admin token to change anything".into(),
            )),
        };
        Ok(match (method, segments.as_slice()) {
            (&Method::GET, [""]) => show("Fleet", Nav::Fleet, fleet::page(cp).await?),
            (&Method::POST, ["logout"]) => with_cookie(redirect("/"), &self.sessions.end()),
            (&Method::GET, ["services", name]) => show(name, Nav::Fleet, service::page(cp, s, name).await?),
            (&Method::GET, ["services", name, "traffic.json"]) => page::json(&service::traffic(cp, name).await),
            (&Method::GET, ["services", name, "diff"]) => show(name, Nav::Fleet, service::diff(cp, name, req).await?),
            (&Method::GET, ["services", name, "rollback"]) => {
                change()?;
                show(name, Nav::Fleet, service::confirm_rollback(cp, s, name, req).await?)
            }
            (&Method::POST, ["services", name, "rollback"]) => {
                change()?;
                service::rollback(cp, s, name, req).await?;
                redirect(&format!("/services/{}", page::enc(name)))
            }
            (&Method::GET, ["denials"]) => {
                let (body, cookie) = review::page(cp, s, req, self.sessions.secure).await?;
                with_cookie(show("Review queue", Nav::Review, body), &cookie)
            }
            (&Method::GET, ["denials", "suggest"]) => {
                show("Suggestion", Nav::Review, review::suggestion(cp, req).await?)
            }
            (&Method::POST, ["denials", "mark"]) => {
                change()?;
                let group = review::mark(cp, s, req).await?;
                redirect(&format!("/denials#g-{group}"))
            }
            (&Method::GET, ["rollouts"]) => show("Rollouts", Nav::Rollouts, rollouts::page(cp, s).await?),
            (&Method::POST, ["rollouts", name]) => {
                change()?;
                rollouts::end(cp, s, name, req).await?;
                redirect("/rollouts")
            }
            (&Method::GET, ["explain"]) => show("Explain", Nav::Explain, explain::page(cp, s, req, false).await?),
            (&Method::POST, ["explain"]) => show("Explain", Nav::Explain, explain::page(cp, s, req, true).await?),
            _ => error(StatusCode::NOT_FOUND, Some(s), open, "No such page."),
        })
    }

    async fn sign_in(&self, cp: &ControlPlane, req: &Req) -> Resp {
        let open = self.sessions.open();
        let name = req.form("name").trim();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(warden_policy::text::is_control) {
            return sign_in_page(
                StatusCode::BAD_REQUEST,
                open,
                Some(
                    "Say who you are (1 to 64 characters, no control characters): changes are recorded under this name.",
                ),
            );
        }
        let Some(role) = self.sessions.role_of(req.form("token").trim()) else {
            return sign_in_page(
                StatusCode::UNAUTHORIZED,
                open,
                Some("That token is neither the admin token nor the console's read-only token."),
            );
        };
        match self.sessions.start(cp, role, name).await {
            Ok(cookie) => {
                tracing::info!(name, role = ?role, "console sign-in");
                with_cookie(redirect("/"), &cookie)
            }
            Err(e) => {
                tracing::warn!(error = %e, "console sign-in failed: the session key could not be read");
                sign_in_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    open,
                    Some("Cannot sign in now: the store does not answer. Try again shortly."),
                )
            }
        }
    }
}

/// Whether a `Host` header names this machine by address or as localhost.
fn local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => return rest.split(']').next().is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

fn sign_in_page(status: StatusCode, open: bool, problem: Option<&str>) -> Resp {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(p) = problem { p.error { (p) } }
        form #signin method="post" action="/login" {
            label.block { "Your name (changes you make are recorded under it) " input type="text" name="name" required maxlength="64" autofocus; }
            label.block { "Admin token, or the console's read-only token " input type="password" name="token" autocomplete="current-password"; }
            button type="submit" { "Sign in" }
        }
    };
    page_html(status, layout("Sign in", None, open, Nav::None, body))
}

fn asset(content_type: &'static str, body: &'static str) -> Resp {
    let mut resp = respond(StatusCode::OK, content_type, body.into());
    resp.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("max-age=300"));
    resp
}
