#!/usr/bin/env bash
# The long chaos run (tests/chaos, test `chaos_long`): a real 3-member etcd
# cluster with auth, faults injected until CHAOS_FAULTS faults (default
# 1000) or CHAOS_SECS seconds (default 1800), then every check of the suite.
#
#   scripts/chaos.sh                          # 1000 faults on 3.5.30, 3.5.1, 3.4.23
#   CHAOS_FAULTS=200 CHAOS_ETCD=3.5.1 scripts/chaos.sh   # one version
#   CHAOS_SEED=1f2e3d scripts/chaos.sh        # replay the random choices
#
# The short CI variant is part of the normal suite: cargo test --test chaos
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-etcd.sh
export CHAOS_FAULTS="${CHAOS_FAULTS:-1000}"
export CHAOS_SECS="${CHAOS_SECS:-1800}"
exec cargo test --test chaos "$@" -- --ignored --nocapture chaos_long
