#!/usr/bin/env bash
# Fuzzes each target for SECONDS_PER_TARGET (default 60), minimises what it found
# (`cargo fuzz cmin`), and picks the committed corpus fuzz/corpus/TARGET/ from it: the one
# `sidecar/tests/fuzz_corpus.rs` replays on stable. Needs the nightly toolchain and python3;
# installs cargo-fuzz if missing.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]
#   FUZZ_TARGETS="http_front" fuzz/run.sh 600        # some targets only
#
# Directories (all under fuzz/):
#   seeds/TARGET/     hand-written inputs; read, never rewritten; always replayed
#   corpus/TARGET/    committed: at most FUZZ_MAX_FILES (200) inputs of at most 4 KiB
#   work/TARGET/      the whole minimised corpus, kept between runs (git-ignored)
#   artifacts/TARGET/ crashes (git-ignored); logs/ libFuzzer's output and summary.txt
#
# The cap keeps the repository and the debug-build replay small. Which inputs stay is a
# greedy set cover over the features libFuzzer reports per input (`-set_cover_merge`):
# the input adding the most features the seeds and the inputs already picked lack, until
# the cap or until nothing adds any. (Keeping the smallest files instead keeps inputs of
# a few bytes that cover a fraction of what the fuzzer reached.)
set -uo pipefail
cd "$(dirname "$0")"
fuzz_dir=$PWD

seconds=${1:-60}
targets=${FUZZ_TARGETS:-policy normalize snapshot http_front}
max_files=${FUZZ_MAX_FILES:-200}
max_len=4096

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked || exit 1
mkdir -p logs artifacts

# Replaces corpus/$1 with at most max_files inputs of work/$1 and corpus/$1, chosen by
# the features each adds beyond the seeds'.
select_corpus() {
  local t=$1 scratch picked
  scratch=$(mktemp -d) picked=$(mktemp -d)
  # A control file left from an earlier run names inputs cmin has since removed.
  rm -f "logs/$t.merge"
  cargo +nightly fuzz run "$t" "$scratch" "$fuzz_dir/seeds/$t" "$fuzz_dir/work/$t" "$fuzz_dir/corpus/$t" -- \
    -set_cover_merge=1 -merge_control_file="$fuzz_dir/logs/$t.merge" -max_len="$max_len" -timeout=10 \
    >"logs/$t.select.log" 2>&1 || { rm -rf "$scratch" "$picked"; return 1; }
  python3 - "$fuzz_dir/logs/$t.merge" "$fuzz_dir/seeds/$t/" "$max_files" "$max_len" "$picked" <<'EOF' || return 1
import os, shutil, sys
control, seeds, cap, max_len, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
lines = open(control).read().splitlines()
paths = lines[2 : 2 + int(lines[0])]
features = {}
for line in lines[2 + len(paths) :]:
    if line.startswith("FT "):
        idx, *fs = line.split()[1:]
        features[int(idx)] = set(fs)
covered, total = set(), set()
for i, fs in features.items():
    total |= fs
    if paths[i].startswith(seeds):
        covered |= fs
seed_features = len(covered)
candidates = {i: fs for i, fs in features.items() if not paths[i].startswith(seeds) and os.path.getsize(paths[i]) <= max_len}
picked = []
while len(picked) < cap and candidates:
    # The most new features; of equals, the smallest input.
    best = max(candidates, key=lambda i: (len(candidates[i] - covered), -os.path.getsize(paths[i])))
    if not candidates[best] - covered:
        break
    covered |= candidates.pop(best)
    picked.append(best)
for i in picked:
    shutil.copy(paths[i], os.path.join(out, os.path.basename(paths[i])))
print(f"committed corpus: {len(picked)} inputs; with the seeds {len(covered)} of {len(total)} features "
      f"(seeds alone {seed_features})")
EOF
  rm -rf "$scratch" "corpus/$t"
  mv "$picked" "corpus/$t"
  chmod 755 "corpus/$t"
}

failed=()
for t in $targets; do
  mkdir -p "work/$t" "corpus/$t" "artifacts/$t"
  extra=()
  [[ -f "dicts/$t.dict" ]] && extra+=("-dict=dicts/$t.dict")
  # Requests with a body or several HTTP/2 frames, and whole policies, need hundreds to
  # thousands of bytes: allow max_len from the start instead of growing towards it.
  [[ $t == http_front || $t == policy ]] && extra+=("-len_control=0")
  echo "== $t: fuzzing for ${seconds}s"
  # -timeout: an input that takes 10 s is a hang worth an artifact (http_front runs on a
  # paused clock, so none of its timers take wall time).
  cargo +nightly fuzz run "$t" "work/$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "${extra[@]}" 2>&1 | tee "logs/$t.log" |
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|panicked|^SUMMARY'
  status=${PIPESTATUS[0]}
  [[ $status -ne 0 ]] && failed+=("$t")
  echo "== $t: minimising"
  cargo +nightly fuzz cmin "$t" "work/$t" -- -max_len="$max_len" -timeout=10 >"logs/$t.cmin.log" 2>&1 ||
    failed+=("$t (cmin)")
  selected=$(select_corpus "$t") || failed+=("$t (corpus selection)")
  {
    echo "$(date -u +%FT%TZ) $t ${seconds}s exit=$status"
    grep -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|DONE)' "logs/$t.log" | tail -1
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "logs/$t.log"
    grep -E '^#[0-9]+[[:space:]]+DONE' "logs/$t.cmin.log" | tail -1 | sed "s/^/minimised ($(find "work/$t" -type f | wc -l) inputs): /"
    echo "$selected"
  } | tee -a logs/summary.txt
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FAILED: ${failed[*]} (see fuzz/artifacts/ and fuzz/logs/)" >&2
  exit 1
fi
