//! Text that someone else wrote, on its way to a person's terminal: which characters a
//! terminal would act on or reorder instead of showing (C0 and C1 controls, DEL, Unicode
//! bidi and direction marks), how they are shown instead (`\x1b`, `\u{202e}`), and what a
//! sidecar instance name may be. One rule for the three places that need it: the
//! sidecar's `--instance`, the control plane's checks on what sidecars send, and every
//! line `wardenctl` prints.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The longest instance name: a Kubernetes pod name (a DNS subdomain) fits.
pub const MAX_INSTANCE_BYTES: usize = 253;

/// True for a character a terminal acts on or uses to reorder text rather than shows:
/// C0 controls, DEL, C1 controls, and the bidi/direction marks (U+061C, U+200E, U+200F,
/// U+202A-U+202E, U+2066-U+2069), plus the Unicode line and paragraph separators.
pub fn is_control(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character written out visibly (`\n`, `\x1b`, `\u{202e}`):
/// for one table cell or one line. Borrows when there is nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_with(s, false)
}

/// Like `escape`, but keeps line breaks and tabs: for multi-line text (a diff, a policy
/// source, an error with a source excerpt). A CR is kept only as part of CRLF, since a
/// bare one moves the cursor back over what was printed.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    escape_with(s, true)
}

fn escape_with(s: &str, keep_lines: bool) -> Cow<'_, str> {
    let escaped_at = |i: usize, c: char| {
        let kept = keep_lines && (c == '\n' || c == '\t' || (c == '\r' && s[i + 1..].starts_with('\n')));
        is_control(c) && !kept
    };
    let Some(first) = s.char_indices().find(|&(i, c)| escaped_at(i, c)).map(|(i, _)| i) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    for (i, c) in s[first..].char_indices() {
        if escaped_at(first + i, c) { push_escaped(&mut out, c) } else { out.push(c) }
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // Writing to a String cannot fail.
        c if u32::from(c) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

/// `s` escaped as `escape` does and cut to at most `max` bytes, ending in `…` when cut
/// (never inside an escape). What a field from an untrusted sender is stored as.
pub fn escape_within(s: &str, max: usize) -> Cow<'_, str> {
    let escaped = escape(s);
    if escaped.len() <= max {
        return escaped;
    }
    const MORE: &str = "…";
    let mut out = String::with_capacity(max);
    let mut piece = String::new();
    for c in s.chars() {
        piece.clear();
        if is_control(c) {
            push_escaped(&mut piece, c)
        } else {
            piece.push(c)
        }
        if out.len() + piece.len() + MORE.len() > max {
            break;
        }
        out.push_str(&piece);
    }
    if out.len() + MORE.len() <= max {
        out.push_str(MORE);
    }
    Cow::Owned(out)
}

/// A sidecar instance name: 1-253 printable ASCII characters, no spaces (a pod name, or
/// the default `HOST:PORT`). Nothing in it can move a terminal's cursor or pose as
/// another name with look-alike or invisible characters.
pub fn is_instance_name(s: &str) -> bool {
    (1..=MAX_INSTANCE_BYTES).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_class_is_shown_escaped() {
        let cases = [
            ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
            ("\x1b[2J", "\\x1b[2J"),
            ("ok\rfake", "ok\\rfake"),
            ("a\nb\tc\0d", "a\\nb\\tc\\x00d"),
            ("del\x7f", "del\\x7f"),
            ("c1 \u{85} \u{9b}31m", "c1 \\u{85} \\u{9b}31m"),
            ("\u{202e}txt.exe", "\\u{202e}txt.exe"),
            ("\u{202a}\u{202b}\u{202c}\u{202d}", "\\u{202a}\\u{202b}\\u{202c}\\u{202d}"),
            ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
            ("\u{2066}\u{2067}\u{2068}\u{2069}", "\\u{2066}\\u{2067}\\u{2068}\\u{2069}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ];
        for (raw, shown) in cases {
            assert_eq!(escape(raw), shown, "{raw:?}");
            assert!(!escape(raw).chars().any(is_control), "{raw:?}");
        }
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for s in ["orders-1", "/api/v1/orders?x=1", "café ✓ 日本", "back\\slash", ""] {
            assert!(matches!(escape(s), Cow::Borrowed(_)), "{s:?}");
            assert_eq!(escape(s), s);
        }
    }

    #[test]
    fn multi_line_text_keeps_its_lines_and_tabs_only() {
        assert_eq!(escape_lines("a\n\tb\r\nc"), "a\n\tb\r\nc");
        assert_eq!(escape_lines("a\rb\x1b[2J\n"), "a\\rb\\x1b[2J\n");
        assert_eq!(escape_lines("end\r"), "end\\r");
    }

    #[test]
    fn long_fields_are_cut_within_the_cap_and_never_inside_an_escape() {
        let long = "x".repeat(3000);
        let cut = escape_within(&long, 2048);
        assert!(cut.len() <= 2048 && cut.ends_with('…'), "{}", cut.len());
        let escapes = "\x1b".repeat(1000);
        let cut = escape_within(&escapes, 2048);
        assert!(cut.len() <= 2048 && cut.ends_with("\\x1b…"), "{cut}");
        let wide = "é".repeat(2000);
        assert!(escape_within(&wide, 2048).len() <= 2048);
        assert_eq!(escape_within("short\x07", 2048), "short\\x07");
    }

    #[test]
    fn instance_names_are_printable_ascii() {
        assert!(is_instance_name("orders-7d9f8-abcde"));
        assert!(is_instance_name("host.example:15001"));
        for bad in ["", "a b", "a\x1bb", "a\rb", "orders\u{202e}1", "café", &"a".repeat(254)] {
            assert!(!is_instance_name(bad), "{bad:?}");
        }
    }
}
