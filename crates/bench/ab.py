#!/usr/bin/env python3
"""Interleaved comparison of load-generator configurations (same CLI as
run_matrix.py's --rust binaries), for questions run_matrix.py does not ask:
bare against full stack, one layer at a time, allocations.

  python3 crates/bench/ab.py --server-pid PID --etcdctl .etcd/v3.5/etcdctl \
      --run bare='target/release/etcd-tower-bench --stack bare' \
      --run full='target/release/etcd-tower-bench --stack full' \
      --ops put,range,txn,watch --points 16x1:60000,128x1:80000 --reps 5

Each rep runs every configuration once, in turn, at each op and point.
Prints one line per run and the medians: ops/s, p50/p99, whole-process
client CPU per op (wait4), etcd CPU per op (/proc/PID/stat), and, when the
binary prints them, allocs_per_op and events.
"""
import argparse, json, os, shlex, statistics, subprocess, threading

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    if not pid:
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def run(cmd):
    """Runs cmd; returns (exit code, stdout, stderr, user+sys CPU seconds)."""
    r, w = os.pipe()
    er, ew = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.dup2(ew, 2)
        os.execv(cmd[0], cmd)
    os.close(w)
    os.close(ew)
    out = {r: [], er: []}

    def pump(fd):
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            out[fd].append(b)

    threads = [threading.Thread(target=pump, args=(fd,)) for fd in (r, er)]
    for t in threads:
        t.start()
    _, status, ru = os.wait4(pid, 0)
    for t in threads:
        t.join()
    os.close(r)
    os.close(er)
    text = lambda fd: b"".join(out[fd]).decode(errors="replace")
    return os.waitstatus_to_exitcode(status), text(r), text(er), ru.ru_utime + ru.ru_stime


def compact(etcdctl, endpoint):
    """Compacts to the current revision and defragments, as run_matrix does,
    so that every run starts from the same small database."""
    status = json.loads(subprocess.check_output([etcdctl, "--endpoints", endpoint, "endpoint", "status", "-w", "json"]))
    revision = status[0]["Status"]["header"]["revision"]
    subprocess.run([etcdctl, "--endpoints", endpoint, "compact", str(revision), "--physical"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([etcdctl, "--endpoints", endpoint, "defrag"], stdout=subprocess.DEVNULL, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", action="append", required=True, help="NAME='BINARY [EXTRA ARGS]'; repeatable")
    ap.add_argument("--endpoints", default="127.0.0.1:23790")
    ap.add_argument("--server-pid", type=int)
    ap.add_argument("--ops", default="put")
    ap.add_argument("--points", default="16x1:60000,128x1:80000", help="CLIENTSxCONNS:TOTAL,...")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--etcdctl", help="compact and defragment before every run (recommended)")
    a = ap.parse_args()
    runs = dict(x.split("=", 1) for x in a.run)
    rows = {}
    for op in a.ops.split(","):
        if op == "range":  # populate the keyspace once; the range runs then skip it
            first = shlex.split(next(iter(runs.values())))
            rc, _, err, _ = run(first + ["--endpoints", a.endpoints, "--op", "range", "--clients", "64",
                                         "--total", "1", "--warmup", "0"])
            assert rc == 0, err
        for point in a.points.split(","):
            cc, total = point.split(":")
            clients, conns = cc.split("x")
            for rep in range(a.reps):
                for name, spec in runs.items():
                    cmd = shlex.split(spec) + ["--endpoints", a.endpoints, "--op", op, "--clients", clients,
                                               "--conns", conns, "--total", total]
                    if op == "range":
                        cmd.append("--no-populate")
                    if a.etcdctl:
                        compact(a.etcdctl, a.endpoints)
                    s0 = proc_cpu_s(a.server_pid)
                    rc, out, err, cpu = run(cmd)
                    s1 = proc_cpu_s(a.server_pid)
                    if rc != 0:
                        print(f"FAILED rc={rc}: {' '.join(cmd)}\n{err[-1000:]}", flush=True)
                        continue
                    line = [l for l in out.splitlines() if l.startswith("op=")][-1]
                    kv = dict(x.split("=", 1) for x in line.split())
                    n = int(total)
                    r = dict(ops=float(kv["ops_per_sec"]), p50=float(kv["p50_us"]), p99=float(kv["p99_us"]),
                             cpu=cpu * 1e6 / n, srv=(s1 - s0) * 1e6 / n if s0 is not None else 0.0,
                             allocs=float(kv.get("allocs_per_op", "nan")), events=kv.get("events", ""),
                             writer=float(kv.get("writer_ops_per_sec", "nan")))
                    rows.setdefault((op, point, name), []).append(r)
                    print(f"{name:12} {op:5} {point:14} rep={rep} ops/s={r['ops']:8.0f} p50={r['p50']:7.0f} "
                          f"p99={r['p99']:7.0f} cpu={r['cpu']:6.2f} srv={r['srv']:6.1f} {r['events']}", flush=True)
    print("\nmedians")
    print(f"{'op':6}{'point':15}{'run':13}{'n':>3}{'ops/s':>9}{'p50us':>8}{'p99us':>8}{'cpu/op':>8}{'srv/op':>8}"
          f"{'allocs':>8}{'writer/s':>9}")
    for (op, point, name), rs in rows.items():
        med = lambda f: statistics.median([x[f] for x in rs])
        print(f"{op:6}{point:15}{name:13}{len(rs):>3}{med('ops'):>9.0f}{med('p50'):>8.0f}{med('p99'):>8.0f}"
              f"{med('cpu'):>8.2f}{med('srv'):>8.1f}{med('allocs'):>8.1f}{med('writer'):>9.0f}")


if __name__ == "__main__":
    main()
