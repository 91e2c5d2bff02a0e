//! Finds the line and column of a node in a YAML document, given its path
//! (`routes[2].upstream`), so checks made after deserializing still point at the source.
//!
//! It re-reads the document with the real YAML parser and a seed that descends along the
//! path, skipping every other node, and fails on purpose at the target node: the parser
//! stamps that error with the node's position. No YAML is parsed by hand.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Formats a path the way error messages show it: `routes[2].match.path`.
pub fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

const FOUND: &str = "\u{0}warden-locate-found";

/// 1-based (line, column) of the node at `path`, or of the deepest ancestor that exists.
pub fn locate(doc: &str, path: &[Seg]) -> Option<(usize, usize)> {
    // Walk to the deepest existing prefix: a missing key reports its parent.
    for depth in (0..=path.len()).rev() {
        let de = yaml_serde::Deserializer::from_str(doc);
        if let Err(e) = (Walk { path: &path[..depth] }).deserialize(de)
            && e.to_string().contains(FOUND)
        {
            return e.location().map(|l| (l.line(), l.column()));
        }
    }
    None
}

struct Walk<'a> {
    path: &'a [Seg],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.path.first() {
            None => d.deserialize_any(Found),
            Some(Seg::Key(_)) => d.deserialize_map(self),
            Some(Seg::Index(_)) => d.deserialize_seq(self),
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map or a sequence")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.path.split_first() else {
            return Ok(());
        };
        while let Some(key) = map.next_key::<String>()? {
            if &key == want {
                return map.next_value_seed(Walk { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.path.split_first() else {
            return Ok(());
        };
        let mut i = 0;
        loop {
            if i == *want {
                return seq.next_element_seed(Walk { path: rest }).map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
}

/// Fails on whatever node it is given, so the parser reports that node's position.
struct Found;

impl<'de> Visitor<'de> for Found {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        "service: orders\nroutes:\n  - name: a\n    match: { path_prefix: /a }\n  - name: b\n    upstream: admin\n";

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }

    #[test]
    fn finds_nested_nodes() {
        assert_eq!(locate(DOC, &[key("service")]), Some((1, 10)));
        assert_eq!(locate(DOC, &[key("routes"), Seg::Index(1), key("upstream")]), Some((6, 15)));
        assert_eq!(locate(DOC, &[key("routes"), Seg::Index(0), key("match"), key("path_prefix")]), Some((4, 27)));
    }

    #[test]
    fn missing_node_points_at_parent() {
        assert_eq!(locate(DOC, &[key("routes"), Seg::Index(1), key("rewrite")]), Some((5, 5)));
    }

    #[test]
    fn path_display() {
        assert_eq!(display_path(&[key("routes"), Seg::Index(2), key("upstream")]), "routes[2].upstream");
    }
}
