#!/usr/bin/env python3
"""Runs the workspace's test binaries two at a time.

`cargo test` runs its test binaries one after another. Ours spend most of
their time waiting on etcd servers (restarts, token expiry, elections), not
on the CPU, so two at a time halve the suite's wall time on the 2-core CI
machine while each binary still runs its own tests in parallel as usual.

Usage: run-tests.py [cargo build arguments...] [-- test binary arguments...]

It builds the test targets with `cargo test --no-run --message-format=json`
(the same arguments as `cargo test` takes), then runs every test executable
from its package's directory, as cargo does, the slowest first. Each
binary's output is printed whole when it ends, under cargo's own `Running`
line. It exits non-zero if any binary failed, after running all of them
(like `--no-fail-fast`), and names the failed ones at the end.
"""

import json
import os
import subprocess
import sys
import threading
import time

LANES = int(os.environ.get("TEST_LANES", "2"))
# No binary of ours takes more than about two minutes; one that runs this
# long hangs.
BINARY_TIMEOUT = 900

# Binaries known to take longest (seconds on CI, roughly): started first so
# that the lanes end together.
SLOW_FIRST = [
    "chaos",
    "tokens",
    "auth_watch",
    "resume_latency",
    "metrics",
    "lease",
    "faults",
    "member_maintenance",
    "frozen_member",
    "recipe_waits",
    "stack",
    "recipes",
    "grpc_proxy",
]


def build(cargo_args):
    """Builds the test targets; returns [(name, executable, cwd)]."""
    command = ["cargo", "test", "--no-run", "--message-format=json-render-diagnostics"]
    command += cargo_args
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    found = []
    for line in process.stdout:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("reason") != "compiler-artifact":
            continue
        executable = message.get("executable")
        if not executable or not message.get("profile", {}).get("test"):
            continue
        target = message["target"]
        kind = target["kind"][0]
        src = os.path.relpath(target["src_path"], os.path.dirname(message["manifest_path"]))
        label = src if kind in ("test", "bench") else f"unittests {src}"
        found.append((target["name"], label, executable, os.path.dirname(message["manifest_path"])))
    if process.wait() != 0:
        sys.exit(process.returncode)
    return found


def order(binaries):
    """The known slow ones first, then the rest as cargo listed them."""

    def rank(entry):
        name = entry[0]
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    return sorted(binaries, key=rank)


def main():
    args = sys.argv[1:]
    if "--" in args:
        split = args.index("--")
        cargo_args, test_args = args[:split], args[split + 1 :]
    else:
        cargo_args, test_args = args, []
    queue = order(build(cargo_args))
    lock = threading.Lock()
    failed = []
    started = time.monotonic()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                name, label, executable, cwd = queue.pop(0)
            began = time.monotonic()
            try:
                result = subprocess.run(
                    [executable] + test_args,
                    cwd=cwd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                    timeout=BINARY_TIMEOUT,
                )
                output, code = result.stdout, result.returncode
            except subprocess.TimeoutExpired as expired:
                partial = expired.stdout or ""
                if isinstance(partial, bytes):
                    partial = partial.decode(errors="replace")
                output = partial + f"\nerror: killed after {BINARY_TIMEOUT} s\n"
                code = 124
            took = time.monotonic() - began
            with lock:
                print(f"     Running {label} ({executable}) [{took:.1f} s]", flush=True)
                sys.stdout.write(output)
                sys.stdout.flush()
                if code != 0:
                    failed.append(f"{label} ({os.path.basename(cwd)})")

    lanes = [threading.Thread(target=worker) for _ in range(max(1, LANES))]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()
    print(f"test binaries: {time.monotonic() - started:.0f} s in {LANES} lanes")
    if failed:
        print(f"error: {len(failed)} target(s) failed:")
        for target in failed:
            print(f"    {target}")
        sys.exit(101)


if __name__ == "__main__":
    main()
