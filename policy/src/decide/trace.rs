//! The steps a decision took, in words: what `wardenctl explain` (and later the console)
//! prints. Built only when asked; the request path passes no trace and builds none.

/// One step: a label (`route 2`, `auth`, `limit`) and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub label: String,
    pub detail: String,
}

/// The steps, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub steps: Vec<Step>,
}

impl Trace {
    pub fn push(&mut self, label: impl Into<String>, detail: impl Into<String>) {
        self.steps.push(Step { label: label.into(), detail: detail.into() });
    }
}

/// Adds a step when a trace is being kept; the detail is only formatted then.
pub fn note(trace: &mut Option<&mut Trace>, label: &str, detail: impl FnOnce() -> String) {
    if let Some(t) = trace.as_deref_mut() {
        t.push(label, detail());
    }
}
