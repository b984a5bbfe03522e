#!/usr/bin/env bash
# The project's test command (README quick start, and what CI runs): every unit, integration,
# property and fuzz test, plus each benchmark run once in test mode.
# Needs the data directory: ../shared/data beside the checkout, or PINFEED_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${PINFEED_DATA:-../shared/data}"
if [ ! -d "$data/recordings" ]; then
    echo "scripts/test.sh: no recordings under $data (set PINFEED_DATA)" >&2
    exit 2
fi
# the end-to-end test's second client is the Python `websockets` library
if ! python3 -c "import websockets" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore websockets
fi
# tests/tardis_parity.rs compares the computed types with tardis-node's own computables
# (npm package tardis-dev, pinned; needs Node)
tardis_dev=13.35.3
if [ ! -f target/tardis-node/node_modules/tardis-dev/package.json ] ||
    ! grep -q "\"version\": \"$tardis_dev\"" target/tardis-node/node_modules/tardis-dev/package.json; then
    if command -v npm >/dev/null 2>&1; then
        mkdir -p target/tardis-node
        npm install --prefix target/tardis-node --no-audit --no-fund --silent "tardis-dev@$tardis_dev"
    fi
fi
cargo test --all-targets
cargo test --doc
