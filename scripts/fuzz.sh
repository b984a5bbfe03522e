#!/usr/bin/env bash
# Fuzz campaign: every target of pinfeed::fuzzing under libFuzzer (nightly, cargo-fuzz),
# SECONDS each (default 60), seeded from the recordings at run time. Prints execs per target.
# Crashes land in fuzz/artifacts/<target>/: commit them once fixed; tests/fuzz_corpus.rs
# replays them on stable in CI.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# FUZZ_RUNS=N runs N execs per target instead of SECONDS (the 10 M campaign: FUZZ_RUNS=10000000).
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
    if [ -n "${FUZZ_RUNS:-}" ]; then budget=(-runs="$FUZZ_RUNS"); else budget=(-max_total_time="$secs"); fi
    # the reader's seeds are short heads of recordings; longer inputs only slow it down
    if [ "$t" = recording ]; then max_len=65536; else max_len=1048576; fi
    start=$(date +%s)
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- "${budget[@]}" \
        -rss_limit_mb=4096 -max_len="$max_len" -print_final_stats=1 2>"$log" || { tail -40 "$log"; exit 1; }
    secs_taken=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    echo "$t: ${execs:-?} execs in ${secs_taken} s (${rate:-?}/s), no crash"
    rm -f "$log"
done
