#!/usr/bin/env bash
# Fuzz campaign: every target of pinfeed::fuzzing under libFuzzer (nightly, cargo-fuzz),
# SECONDS each (default 60), seeded from the recordings at run time. Prints execs per target.
# Crashes land in fuzz/artifacts/<target>/: commit them once fixed; tests/fuzz_corpus.rs
# replays them on stable in CI.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(venue_input book_ops client_frames request_head options_query recording)
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly install --locked cargo-fuzz
fi
# seeds from the recordings (fuzz/corpus is git-ignored: derived from third-party data)
cargo test --test fuzz_corpus -- --ignored write_seed_corpora --quiet
for t in "${targets[@]}"; do
    log="$(mktemp)"
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" \
        -rss_limit_mb=4096 -max_len=1048576 -print_final_stats=1 2>"$log" || { tail -40 "$log"; exit 1; }
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    echo "$t: ${execs:-?} execs in ${secs} s (${rate:-?}/s), no crash"
    rm -f "$log"
done
