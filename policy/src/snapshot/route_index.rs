//! Which routes can match a path, by the path's first segment, so that finding the route
//! among 1,000 costs one map probe and a few full checks rather than 1,000 prefix
//! comparisons. The first matching route in file order still wins: candidates come out
//! in file order.
//!
//! A route whose path pattern (exact or prefix) starts with a segment can only match
//! paths that start with the same segment, because prefixes match on segment boundaries
//! (`normalize::prefix_matches`; routing keys have `%2F` decoded already); routes for any
//! path (no path, or the prefix `/`) are candidates for every request.

use std::collections::HashMap;

use crate::snapshot::route::{PathMatch, Route};

#[derive(Debug, Default)]
pub struct RouteIndex {
    /// Per first segment: the routes for it and the routes for any path, in file order.
    by_segment: HashMap<Box<str>, Vec<usize>>,
    /// The routes for any path: the candidates for a segment no route names.
    anywhere: Vec<usize>,
}

/// A routing key's first segment: up to the next `/`.
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let end = rest.find('/').unwrap_or(rest.len());
    &rest[..end]
}

impl RouteIndex {
    pub fn new(routes: &[Route]) -> Self {
        let mut index = RouteIndex::default();
        for (i, r) in routes.iter().enumerate() {
            match &r.path {
                PathMatch::Exact(p) => index.by_segment.entry(first_segment(p).into()).or_default().push(i),
                PathMatch::Prefix(p) if p != "/" => {
                    index.by_segment.entry(first_segment(p).into()).or_default().push(i);
                }
                PathMatch::Prefix(_) | PathMatch::Any => index.anywhere.push(i),
            }
        }
        // Merged once here, so a request walks one list.
        for list in index.by_segment.values_mut() {
            list.extend_from_slice(&index.anywhere);
            list.sort_unstable();
        }
        index
    }

    /// The routes that may match `path`, in file order.
    pub fn candidates(&self, path: &str) -> impl Iterator<Item = usize> + '_ {
        self.by_segment.get(first_segment(path)).unwrap_or(&self.anywhere).iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_segments_stop_at_a_slash() {
        assert_eq!(first_segment("/api/v1/x"), "api");
        assert_eq!(first_segment("/api"), "api");
        assert_eq!(first_segment("/"), "");
    }
}
