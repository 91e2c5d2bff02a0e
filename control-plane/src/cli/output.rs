//! Output helpers shared by the commands: aligned tables, JSON, times and diffs.

use std::time::{Duration, UNIX_EPOCH};

use similar::TextDiff;

use super::Format;

/// Prints rows as an aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints a value as pretty JSON or as YAML (`-o json` / `-o yaml`).
pub fn structured(format: Format, v: &serde_json::Value) {
    match format {
        Format::Yaml => print!("{}", yaml_serde::to_string(v).unwrap_or_default()),
        Format::Json | Format::Table => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}

/// RFC 3339 UTC, to the second; "-" for 0.
pub fn time(unix_ms: i64) -> String {
    if unix_ms <= 0 {
        return "-".into();
    }
    let t = UNIX_EPOCH + Duration::from_millis(unix_ms.unsigned_abs());
    humantime::format_rfc3339_seconds(t).to_string()
}

/// "12s ago", "3m ago"; "never" for 0.
pub fn ago(unix_ms: i64) -> String {
    if unix_ms <= 0 {
        return "never".into();
    }
    let secs = (warden_now_ms() - unix_ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

fn warden_now_ms() -> i64 {
    crate::store::now_unix_ms()
}

/// A unified diff of two policy texts; empty when they are equal.
pub fn diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(old_name, new_name).to_string()
}
