//! From a policy file's text to validated `Policy` values, with every problem reported as
//! `file:line:column: field: message`.
//!
//! A file may hold several documents (`---`), one per service. Each document is parsed on
//! its own so its exact text can be stored as that service's source; line numbers still
//! refer to the whole file.

use std::fmt;

use super::locate::{display_path, locate};
use super::model::Policy;
use super::validate::{Finding, validate};

/// A problem found in a policy file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// `routes[2].upstream`, or empty when the parser could not say.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found in a file (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<Diagnostic>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// One valid document of a file.
#[derive(Debug, Clone)]
pub struct ParsedPolicy {
    pub policy: Policy,
    /// The document's own text: what is stored and shown as this service's source.
    pub source: String,
    pub warnings: Vec<Diagnostic>,
}

/// Parses and validates every document in a file. Refuses the whole file if any document
/// is invalid, or if two documents name the same service.
pub fn parse_file(file: &str, text: &str) -> Result<Vec<ParsedPolicy>, PolicyErrors> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for doc in split_documents(text) {
        match parse_document(file, doc.text, doc.first_line) {
            Ok(p) => out.push(p),
            Err(PolicyErrors(mut e)) => errors.append(&mut e),
        }
    }
    for (i, p) in out.iter().enumerate() {
        if out[..i].iter().any(|q| q.policy.service == p.policy.service) {
            errors.push(Diagnostic {
                file: file.to_owned(),
                line: 1,
                column: 1,
                field: "service".into(),
                message: format!("service '{}' appears in more than one document", p.policy.service),
            });
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(Diagnostic {
            file: file.to_owned(),
            line: 1,
            column: 1,
            field: String::new(),
            message: "the file holds no policy document".into(),
        });
    }
    if errors.is_empty() { Ok(out) } else { Err(PolicyErrors(errors)) }
}

/// Parses a file and returns the document for `service`, or the only document when
/// `service` is None.
pub fn parse_service(file: &str, text: &str, service: Option<&str>) -> Result<ParsedPolicy, PolicyErrors> {
    let mut docs = parse_file(file, text)?;
    let found = match service {
        Some(s) => docs.iter().position(|d| d.policy.service == s),
        None if docs.len() == 1 => Some(0),
        None => None,
    };
    match found {
        Some(i) => Ok(docs.swap_remove(i)),
        None => {
            let names: Vec<&str> = docs.iter().map(|d| d.policy.service.as_str()).collect();
            let message = match service {
                Some(s) => format!("no document for service '{s}' (found: {})", names.join(", ")),
                None => format!("the file holds several services ({}): say which one", names.join(", ")),
            };
            Err(PolicyErrors(vec![Diagnostic {
                file: file.to_owned(),
                line: 1,
                column: 1,
                field: String::new(),
                message,
            }]))
        }
    }
}

fn parse_document(file: &str, text: &str, first_line: usize) -> Result<ParsedPolicy, PolicyErrors> {
    let policy: Policy = yaml_serde::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        PolicyErrors(vec![Diagnostic {
            file: file.to_owned(),
            line: line + first_line - 1,
            column,
            field: String::new(),
            message,
        }])
    })?;
    let (errors, warnings) = validate(&policy);
    let place = |f: Finding| {
        let (line, column) = locate(text, &f.path).unwrap_or((1, 1));
        Diagnostic {
            file: file.to_owned(),
            line: line + first_line - 1,
            column,
            field: display_path(&f.path),
            message: f.message,
        }
    };
    if !errors.is_empty() {
        return Err(PolicyErrors(errors.into_iter().map(place).collect()));
    }
    Ok(ParsedPolicy { policy, source: text.to_owned(), warnings: warnings.into_iter().map(place).collect() })
}

struct Document<'a> {
    text: &'a str,
    /// 1-based line of the file where `text` starts.
    first_line: usize,
}

/// Splits at `---` document markers (a line that is exactly `---`), dropping documents
/// that hold only comments and blank lines. The YAML itself is left to the parser.
fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" {
            docs.push(Document { text: &text[start..offset], first_line });
            start = offset + line.len();
            first_line = i + 2;
        }
        offset += line.len();
    }
    docs.push(Document { text: &text[start..], first_line });
    docs.retain(|d| d.text.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')));
    docs
}
