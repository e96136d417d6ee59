#!/usr/bin/env bash
# Checks that etcd-tower is ready to publish, as a user would meet it:
#
# 1. `cargo package` of every published crate (the test kit and the bench
#    are not published, and nothing published depends on them), the core
#    built from its packaged sources (its build script compiles the
#    packaged `proto/`); the facade is built as a user builds it in 4;
# 2. the feature matrix: the core and the facade with no default
#    features and with each feature alone, and a layer crate alone (the
#    layers have no features of their own);
# 3. the MSRV: no dependency of a published crate declares a
#    `rust-version` newer than the workspace's;
# 4. every Rust example in README.md, built as the doc tests of a fresh
#    project whose only dependency is `etcd-tower`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
published=(etcd-tower-core etcd-tower-auth etcd-tower-metrics etcd-tower-namespace
    etcd-tower-ordering etcd-tower-retry etcd-tower-timeout etcd-tower-watch etcd-tower
    etcd-tower-naming)

echo "-- cargo package (every published crate; the core verified)"
# pipefail makes a failed cargo fail the pipeline, whatever grep says.
quiet() { grep -v '^warning: ignoring \(example\|test\|bench\)' || true; }
cargo package --workspace --exclude etcd-tower-testkit --exclude etcd-tower-bench \
    --allow-dirty --no-verify 2>&1 | quiet
cargo package -p etcd-tower-core --allow-dirty 2>&1 | quiet

echo "-- feature matrix"
check() {
    echo "   cargo check $*"
    cargo check --quiet --locked "$@"
}
check -p etcd-tower-core --no-default-features
check -p etcd-tower-core --no-default-features --features tls-webpki-roots
check -p etcd-tower-timeout
check -p etcd-tower-naming
check -p etcd-tower --no-default-features
for feature in tls auth namespace metrics recipes dns-srv; do
    check -p etcd-tower --no-default-features --features "$feature"
done

echo "-- MSRV of every dependency"
cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
members = set(meta["workspace_members"])
msrv = next(p["rust_version"] for p in packages.values() if p["name"] == "etcd-tower-core")
as_tuple = lambda v: tuple(int(x) for x in (v.split(".") + ["0", "0"])[:3])
published = set(sys.argv[1:])
# Walk the normal and build dependencies of the published crates.
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
todo = [i for i in members if packages[i]["name"] in published]
seen, newer = set(), []
while todo:
    node = todo.pop()
    if node in seen:
        continue
    seen.add(node)
    for dep in nodes[node]["deps"]:
        if any(k["kind"] != "dev" for k in dep["dep_kinds"]):
            todo.append(dep["pkg"])
for i in seen:
    rv = packages[i].get("rust_version")
    if rv and as_tuple(rv) > as_tuple(msrv):
        newer.append("%s %s needs Rust %s" % (packages[i]["name"], packages[i]["version"], rv))
print(f"   {len(seen)} crates, MSRV {msrv}")
if newer:
    print("   dependencies newer than the MSRV:\n     " + "\n     ".join(sorted(newer)))
    sys.exit(1)
' "${published[@]}"

echo "-- README examples in a fresh project (only dependency: etcd-tower)"
fresh="$CARGO_TARGET_DIR/readme-check"
rm -rf "$fresh"
mkdir -p "$fresh/src"
cat >"$fresh/Cargo.toml" <<EOF
[package]
name = "readme-check"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
etcd-tower = { path = "$root/crates/etcd-tower" }

[workspace]
EOF
# The workspace's lock file keeps the fresh project on the versions CI tests.
cp Cargo.lock "$fresh/Cargo.lock"
cp README.md "$fresh/README.md"
echo '#![doc = include_str!("../README.md")]' >"$fresh/src/lib.rs"
cargo test --quiet --doc --manifest-path "$fresh/Cargo.toml"
rm -rf "$fresh"
echo "-- packaging checks passed"
