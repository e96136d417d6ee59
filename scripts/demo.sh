#!/usr/bin/env bash
# Runs the demo: puts, gets, a txn, a watch and a lease against etcd.
# With ETCD_ENDPOINTS unset it starts a throwaway local etcd (installed into
# .etcd/ first, idempotent) and removes it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${ETCD_ENDPOINTS:-}" ]]; then
    bash scripts/install-etcd.sh
fi
exec cargo run --quiet --example demo
