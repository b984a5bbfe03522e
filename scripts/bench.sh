#!/usr/bin/env bash
# Runs every criterion bench (parse, book, replay) and prints their ratio tables, then one
# timed `pinfeed replay` of all recordings. Figures for README's performance section.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${PINFEED_DATA:-../shared/data}"
args=(--warm-up-time 1 --measurement-time "${MEASURE_S:-3}")
for b in parse book replay; do
    cargo bench --bench "$b" -- "${args[@]}" 2>/dev/null | sed -n '/ratios/,$p'
done
cargo build --release -q
./target/release/pinfeed replay "$data"/recordings/*.jsonl.zst 2>&1 | tail -1
