#!/usr/bin/env bash
# Runs the whole test suite: unit and property tests, SQL logic tests (against Tessera
# and, for cross-checking, against a real PostgreSQL), transaction anomaly tests, the
# kill -9 durability test, shell tests and doc tests. Does its own set-up first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --lib --bins --tests --no-fail-fast
else
  cargo test --workspace --lib --bins --tests --no-fail-fast
fi
cargo test --workspace --doc
