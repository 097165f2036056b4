#!/usr/bin/python3
"""Where a burst of new connections delays cached hits: figure 3's control (100 new connections of one
user asking for a cached key, while 32 paced connections send cached Gets to vleased and to the
baseline, all on the first CPU as in figure 3), run N times, printing for each run the hits slower
than --slow-us with their send time from the burst's start, for vleased and for the baseline.

Run as root with VLEASE_BUILD_DIR pointing at a tools/bench build (build/bench):

    VLEASE_BUILD_DIR=build/bench tests/bench/burst.py [--runs N] [--slow-us US] [--perf-sched DIR]

--perf-sched DIR: `perf sched record -a` around each burst, into DIR/sched-N.data (read it with
`perf sched timehist -i DIR/sched-N.data`: who held the CPU while a hit waited).
"""
import argparse
import array
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--slow-us", type=float, default=150.0)
    ap.add_argument("--perf-sched", metavar="DIR")
    args = ap.parse_args()

    b = bench.Bench(argparse.Namespace(smoke=True, perf=False, out=os.path.join(bench.BUILD, "burst"),
                                       set=["storm=100", "hit_conns=32", "hit_rate=125", "storm_runs=1"]))
    try:
        b.setup()
        b.split_cpus()
        b.get_as(b.users[1], b.broker.socket, "storm1_0")      # cached from now on
        for i in range(args.runs):
            perf = None
            if args.perf_sched:
                os.makedirs(args.perf_sched, exist_ok=True)
                data = os.path.join(args.perf_sched, f"sched-{i}.data")
                perf = subprocess.Popen(["perf", "sched", "record", "-a", "-o", data],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                bench.wait_for(lambda: os.path.exists(data) and os.path.getsize(data) > 0, 10,
                               what="perf sched record to start")
            row = b.storm("burst", "storm1_0", ["-u", b.ug[1], "-c", 100], window_ms=60)
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait(60)
            out = {"run": i, "p99_us": {"vleased": [row["hits_quiet"]["p99_us"], row["hits_storm"]["p99_us"]],
                                        "baseline": [row["baseline_hits_quiet"]["p99_us"],
                                                     row["baseline_hits_storm"]["p99_us"]]}}
            for who, name in (("v", "vleased"), ("b", "baseline")):
                pairs = array.array("Q")
                with open(os.path.join(b.tmp, f"timeline-storm1_0{who}.0"), "rb") as f:
                    pairs.frombytes(f.read())
                t0 = row["t_start_ns"]
                out[f"slow_{name}"] = [(round((pairs[j] - t0) / 1e6, 2), round(pairs[j + 1] / 1e3))
                                       for j in range(0, len(pairs), 2)
                                       if -5e6 < pairs[j] - t0 < 60e6 and pairs[j + 1] > args.slow_us * 1e3]
            print(json.dumps(out), flush=True)
    finally:
        b.close()


if __name__ == "__main__":
    main()
