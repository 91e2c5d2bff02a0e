//! Replays the committed fuzz corpora (`fuzz/corpus/TARGET/`, minimised by `fuzz/run.sh`,
//! and the hand-written `fuzz/seeds/TARGET/`) through the same target bodies libFuzzer
//! ran (`fuzz/src/lib.rs`), on stable and in every test run: an input that once found a
//! panic, or that reaches code only fuzzing reached, keeps being checked after the fuzzer
//! has gone home.

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

/// Fewer corpus files than this means the corpus went missing, not that all is well.
const MIN_CORPUS_FILES: usize = 20;

static PANICKED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs `body`, the target `target`, on every committed input of that target.
fn replay(target: &str, body: fn(&[u8])) {
    // A panic in a task the runtime spawned (an HTTP/2 stream) is caught by tokio and
    // never reaches the caller: the hook sees every one.
    HOOK.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            default_hook(info);
        }));
    });
    let corpus = files(&fuzz_dir().join("corpus").join(target));
    assert!(
        corpus.len() >= MIN_CORPUS_FILES,
        "fuzz/corpus/{target} has {} files, expected at least {MIN_CORPUS_FILES}: run fuzz/run.sh",
        corpus.len()
    );
    let seeds = files(&fuzz_dir().join("seeds").join(target));
    assert!(!seeds.is_empty(), "fuzz/seeds/{target} is empty");
    for file in corpus.iter().chain(&seeds) {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(
            outcome.is_ok() && !PANICKED.load(Ordering::SeqCst),
            "{target} panicked on {} (replay it with: cd fuzz && cargo +nightly fuzz run {target} {})",
            file.display(),
            file.display()
        );
    }
}

#[test]
fn policy_corpus() {
    replay("policy", targets::policy);
}

#[test]
fn normalize_corpus() {
    replay("normalize", targets::normalize);
}

#[test]
fn snapshot_corpus() {
    replay("snapshot", targets::snapshot);
}

#[test]
fn http_front_corpus() {
    replay("http_front", targets::http_front);
}
