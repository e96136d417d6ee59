#!/usr/bin/env bash
# Runs the whole test suite: unit tests, doc tests, examples' builds and the
# integration tests against real etcd 3.5.30, 3.5.1 and 3.4.23 servers, which this script
# installs first (into .etcd/, idempotent). The test binaries run two at a
# time (scripts/run-tests.py: they mostly wait on etcd); TEST_LANES=1 runs
# them one after another as `cargo test` does. Extra arguments go to cargo
# (e.g. `-p etcd-tower --test lease`); arguments after `--` go to each test
# binary (e.g. `-- keeper`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-etcd.sh
cargo_args=()
for arg in "$@"; do
    [ "$arg" = "--" ] && break
    cargo_args+=("$arg")
done
# The whole workspace, unless the arguments name packages.
scope=(--workspace)
case " ${cargo_args[*]-} " in
    *" -p "* | *" --package "*) scope=() ;;
esac
# Every target, unless the arguments pick some.
targets=(--all-targets)
case " ${cargo_args[*]-} " in
    *" --test "* | *" --lib "* | *" --bin "* | *" --example "* | *" --tests "*) targets=() ;;
esac
status=0
python3 scripts/run-tests.py "${scope[@]}" "${targets[@]}" "$@" || status=$?
# Doc tests, unless the arguments picked test targets.
case " ${cargo_args[*]-} " in
    *" --test "* | *" --lib "* | *" --bin "* | *" --example "*) ;;
    *) cargo test "${scope[@]}" --doc --no-fail-fast "${cargo_args[@]}" || status=$? ;;
esac
exit "$status"
