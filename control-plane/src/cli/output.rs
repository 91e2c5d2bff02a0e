//! Output helpers shared by the commands: aligned tables, JSON, times and diffs.
//!
//! Much of what `wardenctl` prints was written by someone else: sidecars (instance names,
//! NACK errors, deny records), clients (paths, hosts), other users (commit messages). A
//! terminal acts on control characters in it (`\x1b]0;…\x07` retitles the window, a bare
//! `\r` overwrites the line, U+202E reverses it), so every table cell goes through `cell`
//! and every other line of such text through `cell` or `lines`: control characters come
//! out escaped and visible. `-o json` / `-o yaml` print the values exactly.

use std::borrow::Cow;

use similar::TextDiff;
use warden_policy::text;

use crate::cli::context::Format;
pub use crate::clock::{ago, time};

/// One line's worth of someone else's text, control characters escaped (`\x1b`, `\n`).
pub fn cell(s: &str) -> Cow<'_, str> {
    text::escape(s)
}

/// Multi-line text (a diff, a policy source), control characters escaped but for line
/// breaks and tabs.
pub fn lines(s: &str) -> Cow<'_, str> {
    text::escape_lines(s)
}

/// Prints rows as an aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", render(header, rows));
}

/// The table `table` prints. Cells are escaped first, so the widths count what the
/// terminal shows.
fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Cow<'_, str>>> = rows.iter().map(|r| r.iter().map(|c| cell(c)).collect()).collect();
    let header: Vec<Cow<'_, str>> = header.iter().map(|h| cell(h)).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for cells in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Prints a value as pretty JSON or as YAML (`-o json` / `-o yaml`).
pub fn structured(format: Format, v: &serde_json::Value) {
    match format {
        Format::Yaml => print!("{}", yaml_serde::to_string(v).unwrap_or_default()),
        Format::Json | Format::Table => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}

/// A unified diff of two policy texts; empty when they are equal.
pub fn diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(old_name, new_name).to_string()
}

/// Header pairs as `-o json` prints them: `[[name, value], ...]`.
pub fn header_pairs(headers: &[warden_proto::v1::Header]) -> serde_json::Value {
    headers.iter().map(|h| serde_json::json!([h.name, h.value])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_are_escaped_and_stay_aligned() {
        let planted = "\x1b]0;pwned\x07\x1b[2J\rfake \u{202e}gnp.exe\u{9b}";
        let rows = vec![vec![planted.to_owned(), "next".to_owned()], vec!["a".to_owned(), "b".to_owned()]];
        let out = render(&["MESSAGE", "COL"], &rows);
        assert!(!out.chars().any(|c| c != '\n' && text::is_control(c)), "{out:?}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "\\x1b]0;pwned\\x07\\x1b[2J\\rfake \\u{202e}gnp.exe\\u{9b}  next");
        // The second column starts at the same place on every line.
        let start = lines[1].chars().count() - "next".len();
        for (line, last) in lines.iter().zip(["COL", "next", "b"]) {
            assert_eq!(line.chars().count() - last.len(), start, "{out}");
        }
    }
}
