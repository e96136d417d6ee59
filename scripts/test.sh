#!/usr/bin/env bash
# Runs the whole test suite: unit tests, doc tests, examples' builds and the
# integration tests against real etcd 3.5.30, 3.5.1 and 3.4.23 servers, which this script
# installs first (into .etcd/, idempotent). Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-etcd.sh
cargo test --workspace --all-targets --no-fail-fast "$@"
cargo test --workspace --doc --no-fail-fast "$@"
