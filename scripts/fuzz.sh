#!/usr/bin/env bash
# The libFuzzer targets of fuzz/ (cargo-fuzz), each for a bounded time.
#
#   bash scripts/fuzz.sh            # every target 30 s (what CI runs)
#   FUZZ_SECS=3600 bash scripts/fuzz.sh grpc_response   # one target, an hour
#
# Installs cargo-fuzz (a pinned version, into .tools/) when it is missing.
# Each target starts from the committed seeds (fuzz/seeds/<target>, and
# the real responses in tests/corpus/grpc for grpc_response) in a scratch
# corpus; a finding is kept in fuzz/artifacts/<target>/ and fails the run.
# Runs on the stable toolchain: `--sanitizer none` needs no nightly; with
# a nightly toolchain, drop it for AddressSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs="${FUZZ_SECS:-30}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(grpc_response watch_fragments jwt_expiry namespace_keys)
fi

cargo_fuzz_version=0.13.2
export PATH="$root/.tools/bin:$PATH"
if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    cargo install --quiet --locked --root "$root/.tools" cargo-fuzz --version "$cargo_fuzz_version"
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd fuzz
cargo fuzz build --sanitizer none --release
for target in "${targets[@]}"; do
    corpus="$scratch/$target"
    mkdir -p "$corpus" "artifacts/$target"
    cp seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    if [ "$target" = grpc_response ]; then
        cp "$root"/tests/corpus/grpc/*.bin "$corpus"/
    fi
    echo "== fuzz $target for ${secs}s"
    # -rss_limit_mb: a target that allocates what a lying length claims
    # fails here rather than taking the machine.
    log="$scratch/$target.log"
    status=0
    cargo fuzz run --sanitizer none --release "$target" "$corpus" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log"
        echo "fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
