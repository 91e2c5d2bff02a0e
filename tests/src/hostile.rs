//! Hostile request spellings, for the hostile and differential tests (and the next ones):
//! every way a path, a host, a method or a header name can be written so that one layer
//! reads it one way and another layer another. Seeded, so a failure names a seed that
//! reproduces it. Requests are raw HTTP/1.1 bytes: a client library would correct half of
//! these spellings before they reach the wire.

/// A small deterministic generator (xorshift64*): no dependency, same sequence everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 0..n
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// One request, spelled exactly as it goes on the wire.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    /// Origin-form (`/a/b?q`) or absolute-form (`http://host/a`).
    pub target: String,
    /// The `Host` header line's value; None sends no `Host`.
    pub host: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl RawRequest {
    pub fn new(method: &str, target: &str, host: Option<&str>) -> RawRequest {
        RawRequest { method: method.into(), target: target.into(), host: host.map(Into::into), headers: Vec::new() }
    }

    /// The request with `Connection: close`, so the answer ends when the connection does.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        if let Some(h) = &self.host {
            out += &format!("Host: {h}\r\n");
        }
        for (k, v) in &self.headers {
            out += &format!("{k}: {v}\r\n");
        }
        out += "Connection: close\r\n\r\n";
        out.into_bytes()
    }
}

/// A path spelled another way: separators doubled, escaped (`%2F`, `%2f`) or padded with
/// dot segments, segments re-cased, percent-encoded, given trailing dots or `;params`,
/// and now and then something outright malformed.
pub fn path_spelling(rng: &mut Rng, path: &str) -> String {
    const FIRST: &[&str] = &["/", "/", "/", "//", "/./", "/x/../", "/%2e/"];
    const SEP: &[&str] = &["/", "/", "/", "//", "%2F", "%2f", "/./", "/x/../", "/%2E/", "/;p=1/"];
    const TAIL: &[&str] = &["", "", "", "/", "%2F", "/.", "/..", "?q=1", "?q=%2F", ".", "./", "%2E"];
    const NASTY: &[&str] = &["%00", "\\", "%5C", "%252F", "..%2F", "%C0%AE", "...", "%", "%zz", "%0d%0a", "%FF"];
    let segments: Vec<&str> = path.split('/').skip(1).filter(|s| !s.is_empty()).collect();
    let mut out = String::new();
    for (i, seg) in segments.iter().enumerate() {
        out += if i == 0 { *rng.pick(FIRST) } else { *rng.pick(SEP) };
        out += &segment_spelling(rng, seg);
        if rng.chance(3) {
            out += *rng.pick(NASTY);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out += *rng.pick(TAIL);
    out
}

fn segment_spelling(rng: &mut Rng, seg: &str) -> String {
    match rng.below(10) {
        0 => seg.to_ascii_uppercase(),
        1 => seg.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c }).collect(),
        2 => {
            // One character percent-encoded, in either case of hex.
            let at = rng.below(seg.len());
            let hex = format!("%{:02X}", seg.as_bytes()[at]);
            let hex = if rng.chance(50) { hex.to_ascii_lowercase() } else { hex };
            format!("{}{hex}{}", &seg[..at], &seg[at + 1..])
        }
        3 => format!("{seg}."),
        4 => format!("{seg};jsessionid=1"),
        5 => format!("{seg}%2E"),
        _ => seg.to_owned(),
    }
}

/// A host spelled another way: case, the root's trailing dot, ports, userinfo, a path, a
/// list, two ports, whitespace; None is no `Host` at all.
pub fn host_spelling(rng: &mut Rng, host: &str) -> Option<String> {
    let mixed: String =
        host.chars().enumerate().map(|(i, c)| if i % 3 == 0 { c.to_ascii_uppercase() } else { c }).collect();
    let spellings = [
        host.to_owned(),
        host.to_owned(),
        host.to_ascii_uppercase(),
        mixed,
        format!("{host}."),
        format!("{host}:80"),
        format!("{host}.:8080"),
        format!("x@{host}"),
        format!("{host}/"),
        format!("a, {host}"),
        format!("{host}, b"),
        format!("{host}:80:81"),
        format!("{host}:"),
        format!("{host}:99999"),
        format!("{host}\t"),
        format!("{host}.."),
        String::new(),
    ];
    if rng.chance(5) { None } else { Some(rng.pick(&spellings).clone()) }
}

/// A method in another case, now and then (`post`, `Post`).
pub fn method_spelling(rng: &mut Rng, method: &str) -> String {
    match rng.below(6) {
        0 => method.to_ascii_lowercase(),
        1 => method.chars().enumerate().map(|(i, c)| if i == 0 { c } else { c.to_ascii_lowercase() }).collect(),
        _ => method.to_owned(),
    }
}

/// Spellings of headers only Warden (or a trusted proxy) may set, each carrying the value
/// "forged": the names CGI, WSGI, Rack and PHP map onto the real ones.
pub const FORGED_NAMES: &[&str] = &[
    "x-warden-client",
    "X-Warden-Client",
    "x_warden_client",
    "X_WARDEN_CLIENT",
    "x.warden.client",
    "x-warden_plan",
    "x_warden_auth",
    "x-forwarded-for",
    "x_forwarded_for",
    "X_Forwarded_Host",
    "x_forwarded_proto",
    "x-real-ip",
    "x_real_ip",
    "x-original-url",
    "x_original_url",
    "x_rewrite_url",
    "forwarded",
    "x-test-route",
    "x_test_route",
];

/// One to three forged headers.
pub fn forged_headers(rng: &mut Rng) -> Vec<(String, String)> {
    (0..1 + rng.below(3)).map(|_| ((*rng.pick(FORGED_NAMES)).to_owned(), "forged".to_owned())).collect()
}

/// `method target` for a base request, spelled in every way above at once.
pub fn spelling(rng: &mut Rng, method: &str, path: &str, host: &str) -> RawRequest {
    let path = path_spelling(rng, path);
    let host_header = host_spelling(rng, host);
    let target = if rng.chance(8) { format!("http://{}{path}", host_header.clone().unwrap_or_default()) } else { path };
    let mut r = RawRequest::new(&method_spelling(rng, method), &target, host_header.as_deref());
    r.headers = forged_headers(rng);
    r
}

/// The status code of a raw HTTP response (0 if there is none).
pub fn status(raw: &str) -> u16 {
    raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The value of a header in a raw HTTP response.
pub fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let head = raw.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The body of a raw HTTP response.
pub fn body(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_spells_the_same_requests() {
        let spell = |seed| {
            let mut rng = Rng::new(seed);
            (0..20).map(|_| spelling(&mut rng, "POST", "/auth/login", "api.example.com").to_bytes()).collect::<Vec<_>>()
        };
        assert_eq!(spell(7), spell(7));
        assert_ne!(spell(7), spell(8));
    }
}
