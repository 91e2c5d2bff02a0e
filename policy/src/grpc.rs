//! What a gRPC caller is, and how it is told things: its `content-type`, its deadline
//! (`grpc-timeout`), and the status codes and messages a refusal becomes, per the gRPC
//! over HTTP/2 protocol (`doc/PROTOCOL-HTTP2.md` in grpc/grpc).

use std::time::Duration;

use http::HeaderMap;
use http::header::CONTENT_TYPE;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

pub const GRPC_STATUS: &str = "grpc-status";
pub const GRPC_MESSAGE: &str = "grpc-message";
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// How a caller speaks gRPC, from its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// `application/grpc`, `application/grpc+proto`, ...: needs HTTP/2 end to end.
    Native,
    /// `application/grpc-web*`: made for HTTP/1.1, its trailers travel in the body.
    Web,
}

impl Caller {
    /// None for a caller that does not speak gRPC.
    pub fn of(headers: &HeaderMap) -> Option<Caller> {
        let ct = headers.get(CONTENT_TYPE)?.as_bytes();
        let rest = strip_prefix_ignore_case(ct, b"application/grpc")?;
        match rest.first() {
            None | Some(b'+' | b';') => Some(Caller::Native),
            Some(b'-') if strip_prefix_ignore_case(rest, b"-web").is_some() => Some(Caller::Web),
            _ => None,
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// The caller's deadline: `grpc-timeout` is 1-8 digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`). None when absent or malformed (then the call has no deadline of its own, as gRPC
/// servers treat it).
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(GRPC_TIMEOUT)?.as_bytes();
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n.saturating_mul(3600)),
        b"M" => Duration::from_secs(n.saturating_mul(60)),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A deadline as a `grpc-timeout` value, in milliseconds (8 digits hold 27 hours), or in
/// seconds past that.
pub fn timeout_value(d: Duration) -> String {
    match d.as_millis() {
        ms if ms < 100_000_000 => format!("{ms}m"),
        _ => format!("{}S", d.as_secs().min(99_999_999)),
    }
}

/// The gRPC status codes Warden answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InvalidArgument,
    DeadlineExceeded,
    PermissionDenied,
    ResourceExhausted,
    Unimplemented,
    Internal,
    Unavailable,
    Unauthenticated,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::InvalidArgument => 3,
            Status::DeadlineExceeded => 4,
            Status::PermissionDenied => 7,
            Status::ResourceExhausted => 8,
            Status::Unimplemented => 12,
            Status::Internal => 13,
            Status::Unavailable => 14,
            Status::Unauthenticated => 16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::InvalidArgument => "INVALID_ARGUMENT",
            Status::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Status::PermissionDenied => "PERMISSION_DENIED",
            Status::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Status::Unimplemented => "UNIMPLEMENTED",
            Status::Internal => "INTERNAL",
            Status::Unavailable => "UNAVAILABLE",
            Status::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

/// The status codes by their names as a policy writes them (`unavailable`,
/// `deadline-exceeded`; gRPC's own `UNAVAILABLE` spelling is accepted too).
pub fn code_of(name: &str) -> Option<u8> {
    const NAMES: [&str; 17] = [
        "ok",
        "cancelled",
        "unknown",
        "invalid-argument",
        "deadline-exceeded",
        "not-found",
        "already-exists",
        "permission-denied",
        "resource-exhausted",
        "failed-precondition",
        "aborted",
        "out-of-range",
        "unimplemented",
        "internal",
        "unavailable",
        "data-loss",
        "unauthenticated",
    ];
    let name = name.to_ascii_lowercase().replace('_', "-");
    NAMES.iter().position(|n| *n == name).and_then(|i| u8::try_from(i).ok())
}

/// `grpc-message` is percent-encoded: every byte outside printable ASCII, and `%`.
const MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

/// A `grpc-message` value for `text`.
pub fn encode_message(text: &str) -> String {
    utf8_percent_encode(text, MESSAGE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn callers_are_told_by_content_type() {
        for (ct, want) in [
            ("application/grpc", Some(Caller::Native)),
            ("application/grpc+proto", Some(Caller::Native)),
            ("Application/GRPC; charset=utf-8", Some(Caller::Native)),
            ("application/grpc-web+proto", Some(Caller::Web)),
            ("application/grpc-web-text", Some(Caller::Web)),
            ("application/grpcx", None),
            ("application/json", None),
        ] {
            assert_eq!(Caller::of(&with("content-type", ct)), want, "{ct}");
        }
        assert_eq!(Caller::of(&HeaderMap::new()), None);
    }

    #[test]
    fn timeouts_parse_as_the_protocol_writes_them() {
        for (v, want) in [
            ("1H", Some(Duration::from_secs(3600))),
            ("2M", Some(Duration::from_secs(120))),
            ("30S", Some(Duration::from_secs(30))),
            ("250m", Some(Duration::from_millis(250))),
            ("99999999u", Some(Duration::from_micros(99_999_999))),
            ("5n", Some(Duration::from_nanos(5))),
            ("123456789m", None),
            ("m", None),
            ("-1S", None),
            ("10s", None),
            ("", None),
        ] {
            assert_eq!(timeout(&with("grpc-timeout", v)), want, "{v:?}");
        }
        assert_eq!(timeout_value(Duration::from_millis(1500)), "1500m");
        let back = timeout(&with("grpc-timeout", "1500m"));
        assert_eq!(back, Some(Duration::from_millis(1500)));
        assert_eq!(timeout_value(Duration::from_secs(200_000)), "200000S");
    }

    #[test]
    fn status_names_are_read_as_policies_write_them() {
        assert_eq!(code_of("unavailable"), Some(14));
        assert_eq!(code_of("DEADLINE_EXCEEDED"), Some(4));
        assert_eq!(code_of("resource-exhausted"), Some(8));
        assert_eq!(code_of("ok"), Some(0));
        assert_eq!(code_of("nope"), None);
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(
            encode_message("rate_limited (rule per-ip): 100% used\n"),
            "rate_limited (rule per-ip): 100%25 used%0A"
        );
        assert_eq!(encode_message("café"), "caf%C3%A9");
    }
}
