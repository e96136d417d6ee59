#!/usr/bin/env python3
"""Leases at scale, side by side: each --run keeps --leases leases alive
for --secs on a fresh single-member etcd, runs interleaved over --reps.

    python3 crates/bench/lease_matrix.py --etcd .etcd/v3.5.30/etcd --reps 2 \\
        --run etcd-tower=target/release/etcd-tower-lease-bench \\
        --run etcd-client=crates/bench/peer-lease-etcd-client/target/release/peer-lease-etcd-client

Each command gets `--endpoints 127.0.0.1:PORT --leases N --ttl T --secs S`
and prints `ready ...` once its leases are granted, then one result line
(`leases= ttl= secs= grant_secs= cpu_ms_per_sec= rss_mib= lost=`). Halfway
through the kept phase the script reads the server's metrics for the
`LeaseKeepAlive` streams open (started minus handled); the server's CPU
is taken over the kept phase from /proc. One row per run and rep, then the
medians and each run's ratio to the first.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) * 1000.0 / ticks


def metric_sum(port, name, label):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + "{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_etcd(binary, workdir):
    client, peer = free_port(), free_port()
    proc = subprocess.Popen(
        [binary, "--data-dir", os.path.join(workdir, "data"), "--name", "bench",
         "--listen-client-urls", f"http://127.0.0.1:{client}",
         "--advertise-client-urls", f"http://127.0.0.1:{client}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"bench=http://127.0.0.1:{peer}",
         "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "etcd.log"), "w"))
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=1).read()
            return proc, client
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("etcd did not become healthy within 30 s")


def one(name, command, args):
    workdir = tempfile.mkdtemp(prefix="lease-matrix-")
    etcd, port = start_etcd(args.etcd, workdir)
    try:
        cmd = command.split() + ["--endpoints", f"127.0.0.1:{port}", "--leases", str(args.leases),
                                 "--ttl", str(args.ttl), "--secs", str(args.secs)]
        bench = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        ready = bench.stdout.readline()
        if not ready.startswith("ready"):
            bench.kill()
            sys.exit(f"{name}: no ready line: {ready!r}")
        server_before = proc_cpu_ms(etcd.pid)
        started = time.time()
        time.sleep(args.secs / 2)
        label = 'grpc_method="LeaseKeepAlive"'
        streams = (metric_sum(port, "grpc_server_started_total", label)
                   - metric_sum(port, "grpc_server_handled_total", label))
        time.sleep(max(0.0, started + args.secs - time.time()))
        server_ms = (proc_cpu_ms(etcd.pid) - server_before) / (time.time() - started)
        result = bench.stdout.readline().split()
        bench.wait(timeout=120)
        row = dict(field.split("=", 1) for field in result)
        row.update(run=name, streams=f"{streams:.0f}", server_cpu_ms_per_sec=f"{server_ms:.1f}")
        return row
    finally:
        etcd.kill()
        etcd.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--etcd", required=True)
    parser.add_argument("--leases", type=int, default=10000)
    parser.add_argument("--ttl", type=int, default=10)
    parser.add_argument("--secs", type=int, default=60)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--run", action="append", required=True, help="NAME=COMMAND")
    args = parser.parse_args()
    runs = [r.split("=", 1) for r in args.run]
    columns = ["run", "leases", "streams", "cpu_ms_per_sec", "rss_mib", "server_cpu_ms_per_sec",
               "grant_secs", "lost"]
    print(" | ".join(columns))
    rows = []
    for rep in range(args.reps):
        for name, command in runs:
            row = one(name, command, args)
            rows.append(row)
            print(" | ".join(str(row.get(c, "?")) for c in columns), flush=True)
    print("\nmedians, and ratio to", runs[0][0])
    medians = {}
    for name, _ in runs:
        mine = [r for r in rows if r["run"] == name]
        medians[name] = {c: statistics.median(float(r[c]) for r in mine) for c in columns[1:]}
    for name, _ in runs:
        cells = []
        for c in columns[1:]:
            value, base = medians[name][c], medians[runs[0][0]][c]
            ratio = f" ({value / base:.2f}x)" if base and name != runs[0][0] else ""
            cells.append(f"{c}={value:g}{ratio}")
        print(name, " ".join(cells))
    if any(int(r["lost"]) for r in rows):
        sys.exit("some leases were lost")


if __name__ == "__main__":
    main()
