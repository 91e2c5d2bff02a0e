//! What every console page shares: the request as the pages read it, the layout (a
//! navigation bar, who is signed in, sign-out), and the responses with the headers every
//! console answer carries: a strict Content-Security-Policy (scripts, styles and
//! connections from this origin only, no inline code, no framing), no sniffing, no
//! referrer, no caching. Templates are maud's, which escapes everything interpolated.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use maud::{DOCTYPE, Markup, html};

pub use crate::clock::{ago, time};
use crate::console::session::Session;

pub type Resp = Response<Full<Bytes>>;

/// Only this origin's scripts, styles and fetches; forms post here; nothing frames it.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A request as the pages read it.
#[derive(Debug, Default)]
pub struct Req {
    pub path: String,
    pub query: Vec<(String, String)>,
    /// An `application/x-www-form-urlencoded` body's fields.
    pub form: Vec<(String, String)>,
    /// The `Cookie` header.
    pub cookies: String,
    /// The `Host` header ("" if absent).
    pub host: String,
}

impl Req {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn form(&self, name: &str) -> &str {
        self.form.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }
}

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Fleet,
    Review,
    Rollouts,
    Explain,
    None,
}

/// A whole page.
pub fn layout(title: &str, session: Option<&Session>, open: bool, nav: Nav, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! { a href=(href) class=@if n == nav { "current" } { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Warden" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "Warden" }
                    @if let Some(s) = session {
                        nav {
                            (item(Nav::Fleet, "/", "Fleet"))
                            (item(Nav::Review, "/denials", "Review queue"))
                            (item(Nav::Rollouts, "/rollouts", "Rollouts"))
                            (item(Nav::Explain, "/explain", "Explain"))
                        }
                        form.signout method="post" action="/logout" {
                            span.who { (s.name) @if !s.can_change() { " (read-only)" } }
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                @if open {
                    p.banner.warn { "This control plane has no --admin-token-file: anyone who reaches this port can change policy." }
                }
                main { (body) }
            }
        }
    }
}

/// An HTML page.
pub fn html(status: StatusCode, markup: Markup) -> Resp {
    respond(status, "text/html; charset=utf-8", markup.into_string().into())
}

/// A JSON answer (what the charts poll).
pub fn json(value: &serde_json::Value) -> Resp {
    respond(StatusCode::OK, "application/json", value.to_string().into())
}

/// 303 to `to` (after a form's change, the page it shows).
pub fn redirect(to: &str) -> Resp {
    let mut resp = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", Bytes::new());
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `resp` with a `Set-Cookie` header.
pub fn with_cookie(mut resp: Resp, cookie: &str) -> Resp {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A page saying what went wrong.
pub fn error(status: StatusCode, session: Option<&Session>, open: bool, message: &str) -> Resp {
    let body = html! {
        h1 { (status.canonical_reason().unwrap_or("Error")) }
        p.error { (message) }
        p { a href="/" { "Back to the fleet" } }
    };
    html(status, layout("Error", session, open, Nav::None, body))
}

pub fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Resp {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A hidden CSRF field for a form that changes something.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A path segment or query value, percent-encoded.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
