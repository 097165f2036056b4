#!/usr/bin/python3
"""Instructions per cached Get, or per miss of a miss storm: vleased under callgrind, counters zeroed
after warm-up.

Run as root with VLEASE_BUILD_DIR pointing at a tools/bench build (build/bench):

    VLEASE_BUILD_DIR=build/bench tests/bench/callgrind.py [--clients N] [--new-connection] [--seconds S] [--out DIR]
    VLEASE_BUILD_DIR=build/bench tests/bench/callgrind.py --storm N [--out DIR]

--storm N: the first Gets of N users at once, as in figure 3 (vaultdev answers at once here), and
what vleased spent on them until the journal of their new leases is folded into the table.

Prints one JSON object: requests, Ir (instructions) and Ir per request; writes the callgrind dump
and a callgrind_annotate listing (inclusive) to DIR (default build/bench).
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--new-connection", action="store_true", help="a new connection for every Get")
    ap.add_argument("--storm", type=int, default=0, help="N users' first Gets at once instead")
    ap.add_argument("--out", default=os.path.join(bench.BUILD))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tag = f"storm{args.storm}" if args.storm else f"{args.clients}{'-new' if args.new_connection else ''}"
    dump = os.path.join(args.out, f"callgrind-get-{tag}.out")

    wrapper = os.path.join(args.out, "vleased-callgrind")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec valgrind -q --tool=callgrind --callgrind-out-file={dump} {bench.VLEASED} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    sys.modules["broker"].VLEASED = wrapper

    size = [f"users={args.storm}", f"storm={args.storm}"] if args.storm else []
    b = bench.Bench(argparse.Namespace(smoke=True, set=size, perf=False, out=args.out))
    try:
        b.setup()       # starts vleased (under callgrind) and reads `db` once for vlb000
        pid = str(b.broker.proc.pid)
        load = [bench.LOAD, "-s", b.broker.socket, "-u", b.ug[0], "-N", "db", "-c", args.clients]
        if args.new_connection:
            load.append("-n")
        bench.run_json(load + ["-d", 1, "-w", 0])                     # warm-up
        b.wait_journal_folded(120)
        subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
        if args.storm:
            res = bench.run_json([bench.LOAD, "-s", b.broker.socket, "-m", "once", "-N", "storm2_0",
                                  "-u", ",".join(b.ug[:args.storm]), "-c", 1])
            b.wait_journal_folded(120)
        else:
            res = bench.run_json(load + ["-d", args.seconds, "-w", 0])
        subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
        time.sleep(0.5)
        dumps = sorted((p for p in os.listdir(args.out) if p.startswith(os.path.basename(dump) + ".")),
                       key=lambda p: os.path.getmtime(os.path.join(args.out, p)))
        last = os.path.join(args.out, dumps[-1])
        ir = 0
        with open(last) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    ir = int(line.split()[1])
        with open(os.path.join(args.out, f"callgrind-get-{tag}.txt"), "w") as f:
            subprocess.run(["callgrind_annotate", "--inclusive=yes", last], stdout=f, stderr=subprocess.DEVNULL)
        print(json.dumps({"clients": args.clients, "new_connection": args.new_connection, "storm": args.storm,
                          "requests": res["requests"], "errors": res["errors"],
                          "Ir": ir, "Ir_per_get": round(ir / max(res["requests"], 1))}))
    finally:
        b.close()


if __name__ == "__main__":
    main()
