//! The import graph between the source files of a crate, read from the source text, so a
//! test can hold the workspace to "imports run one way": no cycle between files, where a
//! `use super::…` imports the parent's file and a `pub use child::…` imports the child's.
//! Declaring a module (`mod x;`) is not an import.
//!
//! A small reader rather than a Rust parser: comments and literals are blanked, then
//! paths are read from the tokens. It resolves `crate::`, `self::`, `super::` and paths
//! that start with a child module's name; names from other crates never form a cycle
//! (Cargo forbids cyclic crates).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["auth", "jwt"]`) → the file that holds it.
type Modules = BTreeMap<Vec<String>, PathBuf>;

/// Every import edge between distinct files of the library rooted at `src/lib.rs`.
pub fn edges(src: &Path) -> Result<BTreeMap<PathBuf, BTreeSet<PathBuf>>, String> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    let mut modules = Modules::new();
    let mut texts = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).map_err(|e| e.to_string())?;
        let Some(module) = module_of(rel) else { continue };
        let text = blank(&std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?);
        let tokens = tokenize(&text);
        for inline in inline_modules(&tokens) {
            modules.insert([module.clone(), inline].concat(), f.clone());
        }
        modules.insert(module.clone(), f.clone());
        texts.push((f, module, tokens));
    }
    let mut out: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (file, module, tokens) in &texts {
        let entry = out.entry(file.clone()).or_default();
        for (at, path) in paths(tokens) {
            let here = [module.clone(), at].concat();
            let Some(target) = resolve(&here, &path, &modules) else { continue };
            if let Some(to) = modules.get(&target).filter(|to| *to != file) {
                entry.insert(to.clone());
            }
        }
    }
    Ok(out)
}

/// The cycles among `edges`: each strongly connected set of two or more files.
pub fn cycles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    // Two files are in one cycle when each reaches the other; the graphs are small.
    let reach = |from: &PathBuf| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(f) = todo.pop() {
            for to in edges.get(&f).into_iter().flatten() {
                if seen.insert(to.clone()) {
                    todo.push(to.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&PathBuf, BTreeSet<PathBuf>> = edges.keys().map(|f| (f, reach(f))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for (f, r) in &reaches {
        if done.contains(*f) || !r.contains(*f) {
            continue;
        }
        let scc: Vec<PathBuf> =
            r.iter().filter(|g| reaches.get(g).is_some_and(|rg| rg.contains(*f))).cloned().collect();
        done.extend(scc.iter().cloned());
        out.push(scc);
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `lib.rs` → [], `a/mod.rs` → [a], `a/b.rs` → [a, b]; binaries are crates of their own.
fn module_of(rel: &Path) -> Option<Vec<String>> {
    let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
    match parts.as_slice() {
        [root] if root == "lib" => Some(Vec::new()),
        [root] if root == "main" => None,
        [first, ..] if first == "bin" => None,
        [dirs @ .., last] if last == "mod" => Some(dirs.to_vec()),
        all => Some(all.to_vec()),
    }
}

/// The text with comments, strings and character literals replaced by spaces.
fn blank(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let skip = if rest.starts_with(b"//") {
            rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            block_comment(rest)
        } else if rest.starts_with(b"r#") || rest.starts_with(b"r\"") || rest.starts_with(b"br") {
            raw_string(rest)
        } else if rest[0] == b'"' {
            string(rest)
        } else if rest[0] == b'\'' {
            char_literal(rest)
        } else {
            0
        };
        if skip == 0 {
            out.push(char::from(b[i]));
            i += 1;
        } else {
            out.push(' ');
            i += skip;
        }
    }
    out
}

fn block_comment(b: &[u8]) -> usize {
    let (mut depth, mut i) = (0usize, 0);
    while i + 1 < b.len() {
        if b[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if b[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

fn raw_string(b: &[u8]) -> usize {
    let start = if b[0] == b'b' { 1 } else { 0 };
    if b.get(start) != Some(&b'r') {
        return 0;
    }
    let hashes = b[start + 1..].iter().take_while(|&&c| c == b'#').count();
    let open = start + 1 + hashes;
    if b.get(open) != Some(&b'"') {
        return 0;
    }
    let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
    b[open + 1..]
        .windows(close.len())
        .position(|w| w == close.as_slice())
        .map_or(b.len(), |p| open + 1 + p + close.len())
}

fn string(b: &[u8]) -> usize {
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// A character literal's length, or 0 for a lifetime (`'a`).
fn char_literal(b: &[u8]) -> usize {
    if b.get(1) == Some(&b'\\') {
        return b[2..].iter().position(|&c| c == b'\'').map_or(0, |p| p + 3);
    }
    // One character, possibly several bytes, then the closing quote.
    let width = std::str::from_utf8(&b[1..b.len().min(5)])
        .ok()
        .or_else(|| (2..=5).rev().find_map(|n| std::str::from_utf8(&b[1..b.len().min(n)]).ok()));
    let Some(c) = width.and_then(|s| s.chars().next()) else { return 0 };
    let end = 1 + c.len_utf8();
    if b.get(end) == Some(&b'\'') { end + 1 } else { 0 }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Colons,
    Punct(char),
}

fn tokenize(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut s = String::from(c);
            while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                s.push(n);
                chars.next();
            }
            out.push(Tok::Ident(s));
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.push(Tok::Colons);
        } else if !c.is_whitespace() {
            out.push(Tok::Punct(c));
        }
    }
    out
}

/// Names of the inline modules (`mod tests { … }`), as paths below the file's module.
fn inline_modules(tokens: &[Tok]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    walk(tokens, |at, _| out.push(at.to_vec()));
    out
}

/// Each path in the tokens, with the inline module it was written in.
fn paths(tokens: &[Tok]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let at: Vec<String> = stack.iter().map(|(m, _)| m.clone()).collect();
        match &tokens[i] {
            Tok::Ident(k) if k == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) = (tokens.get(i + 1), tokens.get(i + 2)) {
                    depth += 1;
                    stack.push((name.clone(), depth));
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(k) if k == "use" => {
                let end = tokens[i..].iter().position(|t| *t == Tok::Punct(';')).map_or(tokens.len(), |p| i + p);
                for p in use_tree(&tokens[i + 1..end]) {
                    out.push((at.clone(), p));
                }
                i = end;
                continue;
            }
            Tok::Ident(first) if tokens.get(i + 1) == Some(&Tok::Colons) => {
                let preceded = i > 0 && tokens[i - 1] == Tok::Colons;
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while tokens.get(j) == Some(&Tok::Colons) {
                    let Some(Tok::Ident(s)) = tokens.get(j + 1) else { break };
                    path.push(s.clone());
                    j += 2;
                }
                if !preceded {
                    out.push((at, path));
                }
                i = j;
                continue;
            }
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if stack.last().is_some_and(|(_, d)| *d == depth) {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Calls `f` with the path of each inline module as it opens.
fn walk(tokens: &[Tok], mut f: impl FnMut(&[String], usize)) {
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Tok::Punct('{') => {
                depth += 1;
                if let (Some(Tok::Ident(m)), Some(Tok::Ident(name))) =
                    (i.checked_sub(2).map(|k| &tokens[k]), i.checked_sub(1).map(|k| &tokens[k]))
                    && m == "mod"
                {
                    stack.push((name.clone(), depth));
                    let at: Vec<String> = stack.iter().map(|(n, _)| n.clone()).collect();
                    f(&at, i);
                }
            }
            Tok::Punct('}') => {
                if stack.last().is_some_and(|(_, d)| *d == depth) {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
}

/// The paths a `use` tree names: `a::{b, c::d as e, self}` → `a::b`, `a::c::d`, `a`.
fn use_tree(tokens: &[Tok]) -> Vec<Vec<String>> {
    fn tree(tokens: &[Tok], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        while *i < tokens.len() {
            match &tokens[*i] {
                Tok::Ident(s) if s == "as" => *i += 2,
                Tok::Ident(s) if s == "self" && path.len() == prefix.len() && !prefix.is_empty() => *i += 1,
                Tok::Ident(s) => {
                    path.push(s.clone());
                    *i += 1;
                }
                Tok::Colons => *i += 1,
                Tok::Punct('{') => {
                    *i += 1;
                    while *i < tokens.len() && tokens[*i] != Tok::Punct('}') {
                        tree(tokens, i, &path, out);
                        if tokens.get(*i) == Some(&Tok::Punct(',')) {
                            *i += 1;
                        }
                    }
                    *i += 1;
                    return;
                }
                Tok::Punct(',') | Tok::Punct('}') => break,
                Tok::Punct(_) => *i += 1,
            }
        }
        out.push(path);
    }
    // `pub(crate) use …` and `pub use …` were read before `use`.
    let mut out = Vec::new();
    let mut i = 0;
    tree(tokens, &mut i, &[], &mut out);
    out
}

/// The module a path written in module `here` names, if it is one of this crate's.
fn resolve(here: &[String], path: &[String], modules: &Modules) -> Option<Vec<String>> {
    let (mut base, mut rest) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (here.to_vec(), &path[1..]),
        "super" => {
            let mut base = here.to_vec();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        first if modules.contains_key(&[here.to_vec(), vec![first.to_owned()]].concat()) => (here.to_vec(), path),
        _ => return None,
    };
    while let Some(next) = rest.first() {
        let deeper = [base.clone(), vec![next.clone()]].concat();
        if !modules.contains_key(&deeper) {
            break;
        }
        base = deeper;
        rest = &rest[1..];
    }
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(&blank(s))
    }

    #[test]
    fn use_trees_expand() {
        let t = toks("crate::a::{b, c::d as e, self, f::{g, h}}");
        let got: Vec<String> = use_tree(&t).iter().map(|p| p.join("::")).collect();
        assert_eq!(got, ["crate::a::b", "crate::a::c::d", "crate::a", "crate::a::f::g", "crate::a::f::h"]);
    }

    #[test]
    fn comments_strings_and_chars_hide_paths() {
        let t = toks("// crate::a::b\nlet s = \"crate::x::y\"; let c = '\"'; fn f<'a>(x: &'a str) { super::z::w(); }");
        let got: Vec<String> = paths(&t).iter().map(|(_, p)| p.join("::")).collect();
        assert_eq!(got, ["super::z::w"]);
    }

    #[test]
    fn inline_modules_scope_super() {
        let mut modules = Modules::new();
        for (m, f) in [(vec![], "lib"), (vec!["a".to_owned()], "a"), (vec!["a".into(), "tests".into()], "a")] {
            modules.insert(m, PathBuf::from(f));
        }
        let here = vec!["a".to_owned(), "tests".to_owned()];
        assert_eq!(resolve(&here, &["super".into(), "X".into()], &modules), Some(vec!["a".to_owned()]));
        assert_eq!(resolve(&["a".to_owned()], &["super".into(), "X".into()], &modules), Some(vec![]));
        assert_eq!(resolve(&[], &["a".into(), "X".into()], &modules), Some(vec!["a".to_owned()]));
        assert_eq!(resolve(&[], &["std".into(), "X".into()], &modules), None);
    }
}
