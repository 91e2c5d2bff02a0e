//! CORS in the policy, so it lives in one place: which browser origins may call a route,
//! with which methods and headers. Warden answers a preflight itself (it is never
//! forwarded) and sets the CORS headers of every response on the route, replacing any
//! the app sent. The Fetch standard is the reference: an allowed origin is echoed exactly
//! with `vary: origin`, never `*`, so credentials and caches both work.

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
    CACHE_CONTROL, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

/// The methods a route allows when its CORS names none: the CORS-safelisted ones.
pub const DEFAULT_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

/// A route's CORS, compiled.
#[derive(Debug)]
pub struct Cors {
    origins: Origins,
    /// For `explain`.
    pub methods: Vec<Method>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    pub credentials: bool,
}

#[derive(Debug)]
enum Origins {
    /// `*`: every origin (never with credentials).
    Any,
    /// Exact origins, and wildcards as (`https://`, `.example.com`): the part between is
    /// one or more DNS labels.
    Listed { exact: Vec<String>, wildcards: Vec<(String, String)> },
}

/// A CORS setting that cannot be compiled (validation refuses these first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cors: {0}")]
pub struct InvalidCors(String);

/// The resolved fields of a route's CORS.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CorsFields<'a> {
    pub allow_origins: &'a [String],
    pub allow_methods: &'a [String],
    pub allow_headers: &'a [String],
    pub expose_headers: &'a [String],
    pub max_age_secs: Option<u64>,
    pub allow_credentials: bool,
}

impl Cors {
    pub fn compile(f: &CorsFields<'_>) -> Result<Cors, InvalidCors> {
        let origins = if f.allow_origins.iter().any(|o| o == "*") {
            if f.allow_credentials {
                return Err(InvalidCors("'*' cannot allow credentials".into()));
            }
            Origins::Any
        } else {
            let (mut exact, mut wildcards) = (Vec::new(), Vec::new());
            for o in f.allow_origins {
                let o = o.to_ascii_lowercase();
                match o.split_once("://*") {
                    Some((scheme, rest)) => wildcards.push((format!("{scheme}://"), rest.to_owned())),
                    None => exact.push(o),
                }
            }
            Origins::Listed { exact, wildcards }
        };
        let methods: Vec<&str> = match f.allow_methods {
            [] => DEFAULT_METHODS.to_vec(),
            m => m.iter().map(String::as_str).collect(),
        };
        let parsed = methods
            .iter()
            .map(|m| Method::from_bytes(m.as_bytes()).map_err(|_| InvalidCors(format!("bad method '{m}'"))))
            .collect::<Result<Vec<_>, _>>()?;
        let list = |items: &[&str]| {
            HeaderValue::try_from(items.join(", ")).map_err(|_| InvalidCors(format!("bad list {items:?}")))
        };
        let names = |items: &[String]| match items {
            [] => Ok(None),
            _ => list(&items.iter().map(String::as_str).collect::<Vec<_>>()).map(Some),
        };
        Ok(Cors {
            origins,
            allow_methods: list(&methods)?,
            methods: parsed,
            allow_headers: names(f.allow_headers)?,
            expose_headers: names(f.expose_headers)?,
            max_age: f.max_age_secs.map(HeaderValue::from),
            credentials: f.allow_credentials,
        })
    }

    /// Whether a browser at `origin` may call the route.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        // Compared as bytes, ignoring ASCII case: no copy per request.
        let o = origin.as_bytes();
        match &self.origins {
            Origins::Any => true,
            Origins::Listed { exact, wildcards } => {
                exact.iter().any(|e| e.as_bytes().eq_ignore_ascii_case(o))
                    || wildcards.iter().any(|(scheme, suffix)| {
                        let (scheme, suffix) = (scheme.as_bytes(), suffix.as_bytes());
                        o.len() > scheme.len() + suffix.len()
                            && o[..scheme.len()].eq_ignore_ascii_case(scheme)
                            && o[o.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                            && is_subdomain_labels(&o[scheme.len()..o.len() - suffix.len()])
                    })
            }
        }
    }

    /// The CORS headers of an actual response on the route: the app's own are replaced,
    /// and an allowed origin gets itself back. Every response varies by `origin`, allowed
    /// or not, so a cache never hands one origin's answer to another.
    pub fn apply(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        for name in [
            ACCESS_CONTROL_ALLOW_ORIGIN,
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            ACCESS_CONTROL_EXPOSE_HEADERS,
            ACCESS_CONTROL_ALLOW_METHODS,
            ACCESS_CONTROL_ALLOW_HEADERS,
            ACCESS_CONTROL_MAX_AGE,
        ] {
            headers.remove(name);
        }
        headers.append(VARY, HeaderValue::from_static("origin"));
        let Some(origin) = origin.filter(|o| self.allows(o)) else { return };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if let Some(v) = &self.expose_headers {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }

    /// Warden's answer to a preflight: 204 with what the route allows when `origin` is
    /// allowed, without any CORS header when it is not (a dry-run policy's answer to an
    /// origin it would refuse: the browser then refuses the call itself).
    pub fn preflight_response(&self, origin: Option<&HeaderValue>, request_id: &HeaderValue) -> Response<Bytes> {
        let mut resp = Response::new(Bytes::new());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert("x-request-id", request_id.clone());
        // Answers differ by origin and by what was asked.
        h.insert(
            VARY,
            HeaderValue::from_static("origin, access-control-request-method, access-control-request-headers"),
        );
        let Some(origin) = origin.filter(|o| self.allows(o)) else {
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return resp;
        };
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, self.allow_methods.clone());
        if let Some(v) = &self.allow_headers {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if let Some(v) = &self.max_age {
            h.insert(ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        if self.credentials {
            h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        resp
    }

    /// What the route allows, in words (for `explain`).
    pub fn describe(&self) -> String {
        let mut out = format!("methods {}", self.allow_methods.to_str().unwrap_or_default());
        if let Some(h) = &self.allow_headers {
            out.push_str(&format!(", headers {}", h.to_str().unwrap_or_default()));
        }
        if let Some(a) = &self.max_age {
            out.push_str(&format!(", max age {}s", a.to_str().unwrap_or_default()));
        }
        if self.credentials {
            out.push_str(", credentials");
        }
        out
    }
}

/// The method a CORS preflight asks about: an `OPTIONS` with `origin` and
/// `access-control-request-method`. None: not a preflight.
pub fn preflight_method(method: &Method, headers: &HeaderMap) -> Option<Method> {
    if method != Method::OPTIONS || !headers.contains_key(ORIGIN) {
        return None;
    }
    Method::from_bytes(headers.get(ACCESS_CONTROL_REQUEST_METHOD)?.as_bytes()).ok()
}

/// `a`, `a.b`: what a `*` of `https://*.example.com` may stand for (never empty, so the
/// pattern does not match `https://example.com`).
fn is_subdomain_labels(s: &[u8]) -> bool {
    s.split(|b| *b == b'.')
        .all(|label| !label.is_empty() && label.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        let origins: Vec<String> = origins.iter().map(|s| (*s).to_owned()).collect();
        let expose = vec!["x-request-id".to_owned()];
        let f = CorsFields {
            allow_origins: &origins,
            expose_headers: &expose,
            allow_credentials: credentials,
            max_age_secs: Some(600),
            ..CorsFields::default()
        };
        Cors::compile(&f).unwrap()
    }

    fn v(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain_wildcard() {
        let c = cors(&["https://app.example.com", "https://*.example.com", "http://localhost:3000"], true);
        for ok in
            ["https://app.example.com", "https://a.example.com", "https://a.b.example.com", "HTTPS://A.Example.com"]
        {
            assert!(c.allows(&v(ok)), "{ok}");
        }
        for no in [
            "https://example.com",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://evil.com/.example.com",
            "https://.example.com",
            "https://a..example.com",
            "https://a.example.com.evil.com",
            "http://localhost:3001",
            "null",
        ] {
            assert!(!c.allows(&v(no)), "{no}");
        }
        assert!(cors(&["*"], false).allows(&v("https://anyone.io")));
        let err = Cors::compile(&CorsFields {
            allow_origins: &["*".to_owned()],
            allow_credentials: true,
            ..CorsFields::default()
        });
        assert!(err.is_err(), "browsers refuse '*' with credentials");
    }

    #[test]
    fn responses_replace_the_apps_cors_headers() {
        let c = cors(&["https://app.example.com"], true);
        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, v("*"));
        h.insert(VARY, v("accept-encoding"));
        c.apply(Some(&v("https://app.example.com")), &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[ACCESS_CONTROL_EXPOSE_HEADERS], "x-request-id");
        assert_eq!(h.get_all(VARY).iter().collect::<Vec<_>>(), ["accept-encoding", "origin"]);

        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, v("*"));
        c.apply(Some(&v("https://evil.com")), &mut h);
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN), "the app's '*' does not survive");
        assert_eq!(h[VARY], "origin");
    }

    #[test]
    fn preflights_are_answered_with_what_the_route_allows() {
        let c = cors(&["https://app.example.com"], false);
        let id = v("r1");
        let r = c.preflight_response(Some(&v("https://app.example.com")), &id);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_METHODS], "GET, HEAD, POST");
        assert_eq!(r.headers()[ACCESS_CONTROL_MAX_AGE], "600");
        assert!(!r.headers().contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
        let r = c.preflight_response(Some(&v("https://evil.com")), &id);
        assert!(!r.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));

        let mut h = HeaderMap::new();
        h.insert(ORIGIN, v("https://app.example.com"));
        assert_eq!(preflight_method(&Method::OPTIONS, &h), None, "an OPTIONS that asks nothing is the app's");
        h.insert(ACCESS_CONTROL_REQUEST_METHOD, v("PUT"));
        assert_eq!(preflight_method(&Method::OPTIONS, &h), Some(Method::PUT));
        assert_eq!(preflight_method(&Method::GET, &h), None);
    }
}
