//! The host a request is for, in one canonical spelling. Routes match host names exactly,
//! so every spelling an app or a resolver treats as the same name must reach the same
//! route: `Admin.Example.com`, `admin.example.com.` (the root's trailing dot) and
//! `admin.example.com:443` are one host. Anything that is not a plain `host[:port]`
//! (userinfo `x@admin`, a path `admin/`, a list `a, b`, two ports `h:80:81`, escapes,
//! spaces) is refused instead of guessed at, and the app receives the canonical form in
//! `Host`, so it can never route on a spelling Warden did not.

use std::borrow::Cow;
use std::net::Ipv6Addr;

/// Why a `Host` header or request authority was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the request's host carries userinfo ('user@')")]
    Userinfo,
    #[error("the request's host is not a valid host[:port]")]
    Invalid,
    #[error("the request's host has an invalid port")]
    Port,
}

/// A valid host in canonical form: lower case, without the trailing dot, with the port as
/// sent (if any). Borrows when the input was already canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalHost<'a> {
    /// `host[:port]`, what the app receives in `Host`.
    full: Cow<'a, str>,
    /// Where the name ends in `full` (the port follows).
    name_len: usize,
}

impl<'a> CanonicalHost<'a> {
    /// `host[:port]`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The name without its port: what routes match.
    pub fn name(&self) -> &str {
        &self.full[..self.name_len]
    }

    /// True when the canonical form is spelled exactly as it arrived.
    pub fn unchanged(&self) -> bool {
        matches!(self.full, Cow::Borrowed(_))
    }

    pub fn into_owned(self) -> CanonicalHost<'static> {
        CanonicalHost { full: Cow::Owned(self.full.into_owned()), name_len: self.name_len }
    }
}

/// The longest host name DNS can carry, plus room for the port and brackets.
const MAX_LEN: usize = 253 + 1 + 2 + 6;

/// Parses a `Host` header value or a URI authority as `host[:port]`: a DNS-style name
/// (letters, digits, `-`, `_`, dots between non-empty labels, one trailing dot allowed),
/// an IPv4 address, or an IPv6 address in brackets; the port is 1 to 5 digits up to 65535.
pub fn canonical_host(raw: &str) -> Result<CanonicalHost<'_>, HostError> {
    if raw.contains('@') {
        return Err(HostError::Userinfo);
    }
    if raw.is_empty() || raw.len() > MAX_LEN {
        return Err(HostError::Invalid);
    }
    let (name, port) = if raw.starts_with('[') {
        let end = raw.find(']').ok_or(HostError::Invalid)?;
        let literal = &raw[1..end];
        literal.parse::<Ipv6Addr>().map_err(|_| HostError::Invalid)?;
        match &raw[end + 1..] {
            "" => (&raw[..=end], None),
            rest => (&raw[..=end], Some(rest.strip_prefix(':').ok_or(HostError::Invalid)?)),
        }
    } else {
        match raw.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (raw, None),
        }
    };
    if let Some(port) = port {
        let digits = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || port.parse::<u32>().map_or(true, |p| p > 65535) {
            return Err(HostError::Port);
        }
    }
    let bracketed = name.starts_with('[');
    if !bracketed {
        let labels = name.strip_suffix('.').unwrap_or(name);
        let ok = !labels.is_empty()
            && labels
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        if !ok {
            return Err(HostError::Invalid);
        }
    }
    let trailing_dot = name.ends_with('.');
    let upper = raw.bytes().any(|b| b.is_ascii_uppercase());
    if !trailing_dot && !upper {
        return Ok(CanonicalHost { full: Cow::Borrowed(raw), name_len: name.len() });
    }
    let kept = if trailing_dot { &name[..name.len() - 1] } else { name };
    let mut full = kept.to_ascii_lowercase();
    let name_len = full.len();
    if let Some(port) = port {
        full.push(':');
        full.push_str(port);
    }
    Ok(CanonicalHost { full: Cow::Owned(full), name_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_host_become_one() {
        let cases = [
            ("api.example.com", "api.example.com", "api.example.com"),
            ("API.Example.COM", "api.example.com", "api.example.com"),
            ("api.example.com.", "api.example.com", "api.example.com"),
            ("api.example.com.:8443", "api.example.com:8443", "api.example.com"),
            ("Api.example.com:80", "api.example.com:80", "api.example.com"),
            ("10.0.0.1:8080", "10.0.0.1:8080", "10.0.0.1"),
            ("[::1]", "[::1]", "[::1]"),
            ("[2001:DB8::1]:443", "[2001:db8::1]:443", "[2001:db8::1]"),
            ("my_host.internal", "my_host.internal", "my_host.internal"),
            ("localhost", "localhost", "localhost"),
        ];
        for (raw, full, name) in cases {
            let h = canonical_host(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!((h.as_str(), h.name()), (full, name), "{raw}");
            assert_eq!(h.unchanged(), raw == full, "{raw}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let cases = [
            ("x@admin.example.com", HostError::Userinfo),
            ("admin.example.com/", HostError::Invalid),
            ("a, b", HostError::Invalid),
            ("a,b", HostError::Invalid),
            ("host:80:81", HostError::Port),
            ("host:", HostError::Port),
            ("host:123456", HostError::Port),
            ("host:99999", HostError::Port),
            ("host:+80", HostError::Port),
            ("admin..example.com", HostError::Invalid),
            (".admin.example.com", HostError::Invalid),
            ("admin.example.com..", HostError::Invalid),
            (".", HostError::Invalid),
            ("", HostError::Invalid),
            ("adm%69n.example.com", HostError::Invalid),
            ("admin example.com", HostError::Invalid),
            ("admin\texample.com", HostError::Invalid),
            ("[::1", HostError::Invalid),
            ("[not-v6]", HostError::Invalid),
            ("[::1]x", HostError::Invalid),
            ("[::1%eth0]", HostError::Invalid),
            ("admin.example.com\\", HostError::Invalid),
        ];
        for (raw, want) in cases {
            assert_eq!(canonical_host(raw), Err(want), "{raw:?}");
        }
        assert_eq!(canonical_host(&"a".repeat(300)), Err(HostError::Invalid));
    }
}
