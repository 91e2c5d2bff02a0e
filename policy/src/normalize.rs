//! Request path normalization and segment-boundary prefix matching.
//!
//! Routes match on the normalized path and the app receives that same path, so the proxy
//! and the app can never disagree about which route a request took. The rules:
//! percent-encoded unreserved characters are decoded (`%7E` → `~`, `%2e` → `.`), other
//! escapes are kept with upper-case hex (`%2f` → `%2F`), repeated slashes merge, `;` path
//! parameters are dropped from every segment (`/admin;x=1` is `/admin`: some servers
//! ignore them, so matching must too), trailing dots are dropped from a segment
//! (`/admin.` is `/admin` to IIS and ASP.NET), and `.` / `..` segments are resolved without
//! climbing above `/` (RFC 3986 §6.2.2). Refused: a path that is not `/…`, a malformed
//! escape, a backslash (a separator to some servers, not to others), escaped control
//! characters (`%00`, `%0A`, …), escapes that are not valid UTF-8 (overlong forms such as
//! `%C0%AE` included), and a segment of three or more dots.
//!
//! An escaped slash (`%2F`) is a separator to an app that decodes the path before routing
//! (WSGI, Rack, most frameworks), so routes always match the path with `%2F` decoded
//! (`decode_escaped_slashes`); whether such a request is then refused or forwarded decoded
//! is the route's `escaped_slashes` setting (Envoy's `path_with_escaped_slashes_action`).

use std::borrow::Cow;

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path must start with '/'")]
    NotOriginForm,
    #[error("the request path has a malformed percent-escape")]
    BadEscape,
    #[error("the request path is not valid UTF-8 once decoded")]
    NotUtf8,
    #[error("the request path contains a backslash")]
    Backslash,
    #[error("the request path hides a segment of dots ('.', '..', '...') behind escaped separators")]
    EscapedDotSegment,
    #[error("the request path contains an escaped control character")]
    ControlChar,
    #[error("the request path has a segment of only dots")]
    DotsSegment,
    #[error("the request path contains an escaped slash (%2F), which this route does not accept")]
    EscapedSlash,
    #[error("the rewritten path is not a valid request target")]
    BadRewrite,
}

/// Normalizes a request path (without its query). Borrows when already normal.
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    if is_normal(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    if raw.contains('\\') {
        return Err(PathError::Backslash);
    }
    let decoded = decode_unreserved(raw.as_bytes())?;
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    resolve_segments(&decoded).map(Cow::Owned)
}

/// A normalized path as an app that decodes `%2F` sees it: the path routes match.
/// Borrows when there is no escaped slash. (Dot segments hidden behind escaped slashes
/// were already refused by `normalize_path`, so decoding cannot climb.)
pub fn decode_escaped_slashes(path: &str) -> Cow<'_, str> {
    if !path.contains("%2F") {
        return Cow::Borrowed(path);
    }
    match resolve_segments(&path.replace("%2F", "/")) {
        Ok(p) => Cow::Owned(p),
        // Unreachable for a normalized path; matching the escaped form is the safe side.
        Err(_) => Cow::Borrowed(path),
    }
}

/// True when `path` equals `prefix` or continues it at a segment boundary:
/// `/api` matches `/api` and `/api/x`, never `/apix`. `/` matches everything.
pub fn prefix_matches(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// True when `path` is the exact path `want`, with or without one trailing slash
/// (`/login/` is `/login` to most frameworks).
pub fn exact_matches(path: &str, want: &str) -> bool {
    path == want || (want != "/" && path.strip_suffix('/') == Some(want))
}

fn is_normal(p: &str) -> bool {
    !p.contains(['%', ';', '\\']) && !p.contains("//") && !p.split('/').any(|s| s.ends_with('.'))
}

fn decode_unreserved(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    // What an app that decodes every escape would see: it must be text.
    let mut fully = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'%' {
            out.push(raw[i]);
            fully.push(raw[i]);
            i += 1;
            continue;
        }
        let hi = raw.get(i + 1).and_then(|c| hex(*c)).ok_or(PathError::BadEscape)?;
        let lo = raw.get(i + 2).and_then(|c| hex(*c)).ok_or(PathError::BadEscape)?;
        let byte = hi << 4 | lo;
        if byte < 0x20 || byte == 0x7f {
            return Err(PathError::ControlChar);
        }
        if byte == b'\\' {
            return Err(PathError::Backslash);
        }
        fully.push(byte);
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte);
        } else {
            out.push(b'%');
            out.push(HEX_UPPER[usize::from(hi)]);
            out.push(HEX_UPPER[usize::from(lo)]);
        }
        i += 3;
    }
    std::str::from_utf8(&fully).map_err(|_| PathError::NotUtf8)?;
    check_escaped_separators(&out)?;
    Ok(out)
}

/// An app that decodes `%2F` before resolving dot segments would climb out of the route
/// on `/public/..%2Fadmin`; refuse any segment whose decoded form hides a segment of only
/// dots, or a second layer of escaping (`%252F`). Three or more dots (`/a%2F...%2Fb`) are
/// refused like `/a/.../b`: otherwise `decode_escaped_slashes` could not resolve the path
/// and routing would see it still escaped.
fn check_escaped_separators(path: &[u8]) -> Result<(), PathError> {
    for seg in path.split(|b| *b == b'/').filter(|s| s.contains(&b'%')) {
        let decoded = percent_decode(seg);
        let hides_dots = decoded.split(|b| *b == b'/').any(|part| !part.is_empty() && part.iter().all(|b| *b == b'.'));
        let double = decoded.windows(3).any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some());
        if hides_dots || double {
            return Err(PathError::EscapedDotSegment);
        }
    }
    Ok(())
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match (s[i], s.get(i + 1).and_then(|c| hex(*c)), s.get(i + 2).and_then(|c| hex(*c))) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn resolve_segments(p: &str) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in p.split('/').skip(1) {
        let seg = seg.split_once(';').map_or(seg, |(name, _params)| name);
        trailing = matches!(seg, "" | "." | "..");
        match seg {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s if s.bytes().all(|b| b == b'.') => return Err(PathError::DotsSegment),
            s => kept.push(s.trim_end_matches('.')),
        }
    }
    let mut out = String::with_capacity(p.len());
    for seg in &kept {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_table() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/b/..", "/a/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/%2e%2e/admin", "/admin"),
            ("/api/%2E%2E/admin", "/admin"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb/../c", "/c"),
            ("/%7Euser", "/~user"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/admin;x=1", "/admin"),
            ("/admin;x=1/users;y=2", "/admin/users"),
            ("/public/..;x/admin", "/admin"),
            ("/%E2%82%AC", "/%E2%82%AC"),
            ("/.", "/"),
            ("/a/.", "/a/"),
            ("/admin.", "/admin"),
            ("/admin../users", "/admin/users"),
            ("/admin%2E/x", "/admin/x"),
            ("/admin.;x=1", "/admin"),
            ("/file.txt.", "/file.txt"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refused_paths() {
        assert_eq!(normalize_path("a/b"), Err(PathError::NotOriginForm));
        assert_eq!(normalize_path("*"), Err(PathError::NotOriginForm));
        assert_eq!(normalize_path("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize_path("/a%4"), Err(PathError::BadEscape));
        assert_eq!(normalize_path("/admin\\..\\x"), Err(PathError::Backslash));
        assert_eq!(normalize_path("/a%00b"), Err(PathError::ControlChar));
        assert_eq!(normalize_path("/a%0d%0aSet-Cookie:x"), Err(PathError::ControlChar));
        assert_eq!(normalize_path("/%C0%AE%C0%AE/admin"), Err(PathError::NotUtf8));
        assert_eq!(normalize_path("/%FF"), Err(PathError::NotUtf8));
        assert_eq!(normalize_path("/public/..%2Fadmin"), Err(PathError::EscapedDotSegment));
        assert_eq!(normalize_path("/..%2fadmin"), Err(PathError::EscapedDotSegment));
        assert_eq!(normalize_path("/x%2F..%2Fadmin"), Err(PathError::EscapedDotSegment));
        assert_eq!(normalize_path("/a%252Fb"), Err(PathError::EscapedDotSegment));
        // Found by the normalize fuzz target: decoding could not resolve these, so they were
        // routed (and an `escaped_slashes: reject` route passed them) with `%2F` in place.
        assert_eq!(normalize_path("/internal%2F...%2Fadmin"), Err(PathError::EscapedDotSegment));
        assert_eq!(normalize_path("/a%2F...."), Err(PathError::EscapedDotSegment));
        assert_eq!(normalize_path("/%2F...%2Fb"), Err(PathError::EscapedDotSegment));
        assert_eq!(normalize_path("/public%5C..%5Cadmin"), Err(PathError::Backslash));
        assert_eq!(normalize_path("/a/.../b"), Err(PathError::DotsSegment));
        assert_eq!(
            normalize_path("/docs/a%2Fb.txt").as_deref(),
            Ok("/docs/a%2Fb.txt"),
            "an escaped slash alone is fine"
        );
    }

    #[test]
    fn already_normal_paths_are_borrowed() {
        assert!(matches!(normalize_path("/api/v1/orders"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn prefix_on_segment_boundaries() {
        let cases = [
            ("/api", "/api", true),
            ("/api/x", "/api", true),
            ("/api/", "/api", true),
            ("/apix", "/api", false),
            ("/ap", "/api", false),
            ("/anything", "/", true),
            ("/api/v1/x", "/api/v1", true),
            ("/api%2Fx", "/api", false),
        ];
        for (path, prefix, want) in cases {
            assert_eq!(prefix_matches(path, prefix), want, "{path} vs {prefix}");
        }
    }

    #[test]
    fn exact_paths_match_with_one_trailing_slash() {
        assert!(exact_matches("/login", "/login"));
        assert!(exact_matches("/login/", "/login"));
        assert!(!exact_matches("/login//", "/login"));
        assert!(!exact_matches("/loginx", "/login"));
        assert!(exact_matches("/", "/"));
    }

    #[test]
    fn escaped_slashes_decode_to_the_path_an_app_routes() {
        assert_eq!(decode_escaped_slashes("/internal%2Fadmin/users"), "/internal/admin/users");
        assert_eq!(decode_escaped_slashes("/a%2F%2Fb"), "/a/b");
        assert_eq!(decode_escaped_slashes("/a%2F"), "/a/");
        assert_eq!(decode_escaped_slashes("/a.%2Fb.%2F"), "/a/b/");
        assert!(matches!(decode_escaped_slashes("/a/b"), Cow::Borrowed("/a/b")));
    }
}
