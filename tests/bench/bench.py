#!/usr/bin/python3
"""tools/bench's driver: measures vleased against bench-baseline in the same run.

Run by tools/bench (root, optimised build in build/bench); writes results.md, results.json and
latency.svg to the output directory. See README.md "Performance" and tests/bench/*.c.
"""
import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SRC = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.environ.setdefault("VLEASE_BUILD_DIR", os.path.join(SRC, "build", "bench"))
BUILD = os.environ["VLEASE_BUILD_DIR"]
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))

from broker import POLICY, VLEASE, VLEASED, Broker  # noqa: E402
from localusers import LocalUsers  # noqa: E402
from pgcluster import PgCluster  # noqa: E402
from poll import wait_for  # noqa: E402
from vaultdev import VaultDev  # noqa: E402

BENCH = os.path.join(BUILD, "tests", "bench")
LOAD, BASELINE, CLIENT, SPAWN, STATE = (os.path.join(BENCH, p) for p in
                                        ("bench-load", "bench-baseline", "bench-client", "bench-spawn", "bench-state"))

FULL = dict(pop_conns=2, users=100, creds=100, dur=5.0, warm=1.0, spawn_sec=3.0, storm=100, idle_sec=60.0,
            short_creds=10, short_ttl=30, cold_runs=5, hit_conns=32, hit_rate=125, storm_runs=9)
SMOKE = dict(pop_conns=2, users=2, creds=5, dur=0.5, warm=0.2, spawn_sec=0.5, storm=10, idle_sec=3.0,
             short_creds=3, short_ttl=6, cold_runs=1, hit_conns=8, hit_rate=100, storm_runs=1)

T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def run_json(argv, timeout=1800, preexec=None):
    argv = [str(x) for x in argv]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)
    if r.returncode != 0 and not r.stdout.strip():
        raise RuntimeError(f"{argv[0]} failed ({r.returncode}): {r.stderr}")
    return json.loads(r.stdout)


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    # the process's status counts only its first thread's context switches: add up every thread's
    # (curl's resolver threads, if any)
    ctxsw = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                        ctxsw += int(v)
        except OSError:
            pass
    return {"rss_kib": int(out["VmRSS"].split()[0]), "hwm_kib": int(out["VmHWM"].split()[0]),
            "cpu_s": (int(fields[11]) + int(fields[12])) / tick, "ctxsw": ctxsw}


def descendants(pid):
    """pid and every process below it"""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def pin(pids, cpus):
    """every thread of every process in pids onto cpus (a set)"""
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def summary(values):
    return {"n": len(values), "p50_us": pct(values, 50), "p99_us": pct(values, 99), "max_us": max(values or [0])}


class Bench:
    def __init__(self, args):
        self.a = dict(FULL if not args.smoke else SMOKE)
        for kv in args.set:
            k, _, v = kv.partition("=")
            assert k in self.a, f"unknown parameter {k}"
            self.a[k] = type(self.a[k])(v)
        self.smoke = args.smoke
        self.perf = args.perf
        self.out = args.out
        os.makedirs(self.out, exist_ok=True)
        self.res = {"params": self.a, "mode": "smoke" if args.smoke else "full", "figures": {}, "checks": {}}
        self.tmp = tempfile.mkdtemp(prefix="vlease-bench-")
        os.chmod(self.tmp, 0o755)
        self.cleanup = []

    # ---- setup ------------------------------------------------------------------------------------
    def setup(self):
        a = self.a
        log("starting PostgreSQL and vaultdev")
        self.pg = PgCluster().start()
        self.cleanup.append(self.pg.stop)
        # the broker may open many connections at once for a population; give PostgreSQL room
        self.vd = VaultDev(pg=self.pg).start()
        self.cleanup.append(self.vd.stop)
        self.vd.setup_database(self.pg, role="reader", default_ttl="1h", max_ttl="24h")
        self.vd.write_db_role("short", default_ttl=f"{a['short_ttl']}s", max_ttl="24h")
        with open(POLICY) as f:
            self.vd.write_policy("vleased", f.read())
        self.role = self.vd.setup_approle("vleased", policies=["vleased"], token_ttl=3600, token_max_ttl=86400)

        log(f"creating {a['users']} local users vlb000..")
        self.lu = LocalUsers()
        self.cleanup.append(self.lu.cleanup)
        self.lu.group("vlbench")
        self.users = []
        for i in range(max(a["users"], 2)):
            name = f"vlb{i:03d}"
            uid = self.lu.user(name, ("vlbench",))
            self.users.append((name, uid, pwd.getpwnam(name).pw_gid))
        self.ug = [f"{u}:{g}" for _, u, g in self.users]

        creds = [("db", "reader")]
        creds += [(f"storm{k}_{i}", "reader") for k in (1, 2) for i in range(a["storm_runs"])]
        creds += [(f"bench{i}", "reader") for i in range(a["creds"])]
        creds += [(f"short{i}", "short") for i in range(a["short_creds"])]
        cfg = f"""[vault]
address = {self.vd.addr}
auth = approle
role_id_file = {{dir}}/role_id
secret_id_file = {{dir}}/secret_id

[broker]
idle_release_sec = 3600
max_connections_per_uid = 256
max_requests_per_uid = 128
"""
        for name, role in creds:
            cfg += f"\n[credential {name}]\npath = database/creds/{role}\nallow_groups = vlbench\nallow_users = root\n"
        self.config = cfg
        self.broker = Broker(cfg, role_id=self.role[0], secret_id=self.role[1])
        # the lease table on disk as deployed (StateDirectory=vlease): every new lease is saved
        state = self.state_dir = os.path.join(self.broker.dir, "state")
        os.mkdir(state, 0o700)
        self.broker.start(args=("--state-dir", state))
        self.cleanup.append(lambda: (self.broker.stop() if self.broker.proc else None, self.broker.remove()))
        self.pid = self.broker.proc.pid
        self.res["rss_start_kib"] = proc_status(self.pid)["rss_kib"]

        # the reply bytes vleased sends for a cached Get of `db` by vlb000: what the baseline sends
        self.get_as(self.users[0], self.broker.socket, "db")
        reply = self.get_as(self.users[0], self.broker.socket, "db")
        assert reply.startswith('{"parameters"'), reply
        self.reply_path = os.path.join(self.tmp, "reply")
        with open(os.open(self.reply_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(reply.encode() + b"\0")
        self.res["reply_bytes"] = len(reply) + 1
        self.base_sock = os.path.join(self.tmp, "baseline.sock")
        self.base = subprocess.Popen([BASELINE, self.reply_path, self.base_sock])
        self.cleanup.append(lambda: (self.base.terminate(), self.base.wait()))
        deadline = time.monotonic() + 10
        while not os.path.exists(self.base_sock):
            assert time.monotonic() < deadline, "bench-baseline did not start"
            time.sleep(0.01)

    def wait_journal_folded(self, timeout):
        """until vleased has folded its lease journal into the table (the journal is empty or gone)"""
        journal = os.path.join(self.state_dir, "leases.journal")
        wait_for(lambda: not os.path.exists(journal) or os.path.getsize(journal) == 0, timeout,
                 what="the lease journal to be folded")

    def get_as(self, user, sock, name):
        _, uid, gid = user
        r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", CLIENT, sock, name],
                           capture_output=True, text=True, timeout=120)
        return r.stdout.rstrip("\n")

    def background_pids(self):
        """vaultdev and PostgreSQL with all their threads and backends: a remote Vault and database
        in production, here they share the machine's CPUs with vleased"""
        with open(os.path.join(self.pg.datadir, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        return descendants(self.vd.proc.pid) + descendants(postmaster)

    def load(self, sock, *args, profile=None, cpus=None):
        perf = None
        if profile and self.perf and sock == self.broker.socket:
            data = os.path.join(self.out, f"perf-{profile}.data")
            perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2999", "--call-graph", "dwarf,16384", "-o", data,
                                     "-p", str(self.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        try:
            return run_json([LOAD, "-s", sock, *[str(x) for x in args]],
                            preexec=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        finally:
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait(60)
                with open(os.path.join(self.out, f"perf-{profile}.txt"), "w") as fh:
                    subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none",
                                    "--percent-limit", "0.5"], stdout=fh, stderr=subprocess.DEVNULL)

    # ---- figure 1 -------------------------------------------------------------------------------
    def fig1(self):
        a = self.a
        u = self.ug[0]
        rows = []
        for label, extra in (("1 client", ["-c", 1]), ("8 clients", ["-c", 8]), ("64 clients", ["-c", 64]),
                             ("new connection per request, 8 clients", ["-c", 8, "-n"])):
            args = ["-u", u, "-N", "db", "-d", a["dur"], "-w", a["warm"], *extra]
            log(f"figure 1: cached Get, {label}")
            v = self.load(self.broker.socket, *args, profile="get-" + label.split(",")[0].replace(" ", "-"))
            b = self.load(self.base_sock, *args)
            rows.append({"case": label, "vleased": v, "baseline": b})
        self.res["figures"]["1_cached_get"] = rows

    # ---- figure 2 -------------------------------------------------------------------------------
    def fig2(self):
        a = self.a
        u = self.ug[0]
        log("figure 2: `vlease get` as a whole process")
        v = run_json([SPAWN, "-u", u, "-d", a["spawn_sec"], "--", VLEASE, "--socket", self.broker.socket, "get", "db"])
        b = run_json([SPAWN, "-u", u, "-d", a["spawn_sec"], "--", CLIENT, self.base_sock, "db"])
        self.res["figures"]["2_process"] = {"vleased": v, "baseline": b}

    # ---- figure 3 -------------------------------------------------------------------------------
    def storm(self, label, cred, storm_args, window_ms=None, target=None):
        a = self.a
        tl = os.path.join(self.tmp, f"timeline-{cred}")
        hit_dur = 3.0
        # What is measured is whether vleased's own handling of the misses delays its hits. On this
        # two-CPU machine the stand-ins would blur that: run unpinned, a PostgreSQL backend creating a
        # role held a CPU for up to 5 ms in the (non-preemptible) kernel while vleased waited for it,
        # and hits on the baseline, which has no storm at all, were 40x slower in the same window. So
        # for the whole figure (quiet and storm alike) vleased, the baseline and their hit clients share
        # the first CPU, as a broker and its local clients would; the storm's clients, vaultdev,
        # PostgreSQL (remote in production) and this script run on the others (split_cpus()). The
        # baseline's hits are the control.
        fg, bg = self.cpu_split

        def hit_client():
            os.sched_setaffinity(0, fg)

        # The previous storm's new leases are folded from leases.journal into the table 2 s after
        # the last one, by a rewrite of the whole table on the event loop (milliseconds with a few
        # hundred leases; see README, What is left). Not in the window before this storm: that
        # window is the quiet one.
        self.wait_journal_folded(70)

        hits, bhits = (subprocess.Popen([str(x) for x in [LOAD, "-s", sock, "-u", self.ug[0], "-N", "db",
                                                          "-c", a["hit_conns"], "-r", a["hit_rate"], "-d", hit_dur,
                                                          "-w", 0, "-T", tl + who]],
                                        stdout=subprocess.PIPE, text=True, preexec_fn=hit_client)
                       for sock, who in ((self.broker.socket, "v"), (self.base_sock, "b")))
        time.sleep(hit_dur / 3)
        self.vd.clear_requests()
        self.vd.faults(latency_ms=50)
        s = self.load(target or self.broker.socket, "-m", "once", "-N", cred, *storm_args, profile=f"storm-{cred}",
                      cpus=bg)
        self.vd.faults(latency_ms=0)
        calls = len(self.vd.requests(path_prefix="database/creds/"))
        out, _ = hits.communicate(timeout=120)
        bout, _ = bhits.communicate(timeout=120)

        # "during": until the last answer, or a given window (the control burst, over as long as a storm)
        end = s["t_last_answer_ns"] if window_ms is None else s["t_start_ns"] + int(window_ms * 1e6)

        def split(path):
            import array
            pairs = array.array("Q")
            with open(path, "rb") as f:
                pairs.frombytes(f.read())
            during, quiet = [], []
            for i in range(0, len(pairs), 2):
                t, lat = pairs[i], pairs[i + 1]
                if s["t_start_ns"] <= t <= end:
                    during.append(lat / 1e3)
                elif t < s["t_start_ns"]:
                    quiet.append(lat / 1e3)
            return quiet, during

        (q, d), (bq, bd) = split(tl + "v.0"), split(tl + "b.0")
        samples = {"v": (q, d), "b": (bq, bd)}
        q, d, bq, bd = (summary(x) for x in (q, d, bq, bd))
        row = {"case": label, "t_start_ns": s["t_start_ns"], "requests": s["requests"], "errors": s["errors"], "first_error": s["first_error"],
               "vault_calls": calls, "last_answer_ms": (s["t_last_answer_ns"] - s["t_start_ns"]) / 1e6,
               "hits_quiet": q, "hits_storm": d, "baseline_hits_quiet": bq, "baseline_hits_storm": bd,
               "hits_all": json.loads(out), "baseline_hits_all": json.loads(bout), "_samples": samples}
        row["baseline_hit_p99_ratio"] = bd["p99_us"] / bq["p99_us"] if bq["n"] and bd["n"] else None
        row["hit_p99_ratio"] = d["p99_us"] / q["p99_us"] if q["n"] and d["n"] else None
        return row

    def storm_runs(self, label, cred, storm_args, window_ms=None, target=None):
        """the storm, storm_runs times with a fresh key each: one stall of this machine (a kernel thread
        holding the CPU for milliseconds) can decide a single run's p99; the median of the runs' ratios
        is the figure, and every run is kept in results.json"""
        runs = [self.storm(label, f"{cred}_{i}", storm_args, window_ms, target) for i in range(self.a["storm_runs"])]

        def median(key):
            v = sorted(r[key] for r in runs if r[key] is not None)
            return v[len(v) // 2] if v else None

        def pooled(who):
            """every run's hits together, before and during: the p99 of ~2,000 hits in storms, against
            the baseline's hits in the very same windows (on the same CPU), shows whether a stall was
            vleased's or the machine's"""
            return (summary([x for r in runs for x in r["_samples"][who][0]]),
                    summary([x for r in runs for x in r["_samples"][who][1]]))

        pool = {"vleased": pooled("v"), "baseline": pooled("b")}
        for r in runs:
            del r["_samples"]
        row = dict(min(runs, key=lambda r: abs((r["hit_p99_ratio"] or 0) - (median("hit_p99_ratio") or 0))))
        row["pooled"] = {k: {"quiet": v[0], "during": v[1]} for k, v in pool.items()}
        row.update(runs=runs, hit_p99_ratio=median("hit_p99_ratio"),
                   baseline_hit_p99_ratio=median("baseline_hit_p99_ratio"),
                   hit_p99_ratios=[r["hit_p99_ratio"] for r in runs],
                   baseline_hit_p99_ratios=[r["baseline_hit_p99_ratio"] for r in runs],
                   vault_calls=max(r["vault_calls"] for r in runs), errors=sum(r["errors"] for r in runs),
                   last_answer_ms=median("last_answer_ms"))
        return row

    def split_cpus(self):
        """figure 3's CPUs: vleased, the baseline and their hit clients on the first; everything else,
        this script (which starts the storms and reads their results) included, on the others"""
        cpus = sorted(os.sched_getaffinity(0))
        self.cpu_split = ({cpus[0]}, set(cpus[1:]) or {cpus[0]})
        self.every_cpu = set(cpus)
        pin([self.pid, self.base.pid], self.cpu_split[0])
        pin(self.background_pids() + [os.getpid()], self.cpu_split[1])

    def unsplit_cpus(self):
        pin([self.pid, self.base.pid, os.getpid()] + self.background_pids(), self.every_cpu)

    def fig3(self):
        n = self.a["storm"]
        log(f"figure 3: miss storms of {n} (vaultdev +50 ms), {self.a['storm_runs']} runs each")
        self.split_cpus()
        try:
            one = self.storm_runs(f"{n} first Gets, one key", "storm1", ["-u", self.ug[1], "-c", n])
            # the control: the very same burst (the keys the runs above fetched, now cached), no miss
            same = self.storm_runs(f"{n} Gets of one cached key, the same burst without a miss (hits over "
                                   f"{one['last_answer_ms']:.0f} ms from its start)", "storm1",
                                   ["-u", self.ug[1], "-c", n], window_ms=one["last_answer_ms"])
            # and the same burst sent to the baseline: what that many connections cost the simplest server
            base = self.storm_runs(f"the same burst sent to the baseline instead", "storm1",
                                   ["-u", self.ug[1], "-c", n], window_ms=one["last_answer_ms"], target=self.base_sock)
            many = self.storm_runs(f"{n} first Gets, {n} users", "storm2", ["-u", ",".join(self.ug[:n]), "-c", 1])
        finally:
            self.unsplit_cpus()
        self.res["figures"]["3_miss_storm"] = [one, many]
        self.res["figures"]["3_hit_burst"] = same
        self.res["figures"]["3_baseline_burst"] = base
        # the same storm against the baseline: it has no Vault, so only the IPC part
        self.res["figures"]["3_baseline_once"] = self.load(self.base_sock, "-m", "once", "-N", "storm1_0", "-c", n)

    # ---- figure 4 -------------------------------------------------------------------------------
    def fig4(self):
        a = self.a
        n_users, n_creds = a["users"], a["creds"]
        log(f"figure 4: populating {n_users} users x {n_creds} credentials")
        self.vd.clear_requests()
        before = proc_status(self.pid)
        pop = self.load(self.broker.socket, "-m", "each", "-u", ",".join(self.ug[:n_users]), "-c", a["pop_conns"],
                        "-N", "bench%d", "-K", n_creds)
        after = proc_status(self.pid)
        roles = int(self.pg.psql_admin("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'").strip())
        leases = json.loads(subprocess.run(["python3", os.path.join(SRC, "tests", "lib", "varlink.py"),
                                            self.broker.socket, "io.vlease.Broker.Status"],
                                           capture_output=True, text=True, timeout=120).stdout)
        held = len(leases.get("parameters", {}).get("held", []))
        fig = {"leases_wanted": n_users * n_creds, "populate": pop, "held": held, "pg_roles": roles,
               "populate_cpu_s": after["cpu_s"] - before["cpu_s"], "rss_kib": after["rss_kib"],
               "hwm_kib": after["hwm_kib"], "rss_start_kib": self.res["rss_start_kib"]}

        # what vleased's event loop spends on the lease table at this size: the whole table rewritten at
        # a journal fold, against one plain write of the same bytes, and one journal line per new lease
        fig["table_write"] = run_json([STATE, "-n", max(held, 1), "-r", 5, self.tmp])

        # cached Get with the cache full: lookup cost at scale, vs. the baseline
        log("figure 4: cached Get with the cache full, 8 clients")
        args = ["-u", self.ug[n_users // 2], "-N", f"bench{n_creds // 2}", "-c", 8, "-d", a["dur"], "-w", a["warm"]]
        fig["get_full"] = {"vleased": self.load(self.broker.socket, *args, profile="get-full-cache"), "baseline": self.load(self.base_sock, *args)}

        log(f"figure 4: idle for {a['idle_sec']} s")
        self.vd.clear_requests()
        s0 = proc_status(self.pid)
        time.sleep(a["idle_sec"])
        s1 = proc_status(self.pid)
        fig["idle"] = {"seconds": a["idle_sec"], "cpu_s": s1["cpu_s"] - s0["cpu_s"], "wakeups": s1["ctxsw"] - s0["ctxsw"],
                       "vault_calls": len(self.vd.requests())}

        # renewal spread with short TTLs
        ttl = a["short_ttl"]
        log(f"figure 4: {n_users} x {a['short_creds']} leases with TTL {ttl} s, renewal spread")
        sp = self.load(self.broker.socket, "-m", "each", "-u", ",".join(self.ug[:n_users]), "-c", a["pop_conns"],
                       "-N", "short%d", "-K", a["short_creds"])
        self.vd.clear_requests()
        obs = 2 * ttl
        t_start = time.time()
        time.sleep(obs)
        reqs = self.vd.requests(path_prefix="sys/leases/renew")
        times = sorted(r["time"] for r in reqs if t_start <= r["time"] <= t_start + obs)
        peak, j = 0, 0
        for i, t in enumerate(times):
            while times[j] < t - 1.0:
                j += 1
            peak = max(peak, i - j + 1)
        per_sec = [0] * int(obs)
        for t in times:
            per_sec[min(int(t - t_start), int(obs) - 1)] += 1
        avg = len(times) / obs
        fig["spread"] = {"leases": n_users * a["short_creds"], "ttl_s": ttl, "populate_s": sp["seconds"],
                         "observed_s": obs, "renewals": len(times), "avg_per_s": avg, "peak_1s": peak,
                         "peak_ratio": peak / avg if avg else None, "per_second": per_sec,
                         "errors": sp["errors"]}
        self.res["figures"]["4_scale"] = fig

    # ---- figure 5 -------------------------------------------------------------------------------
    def first_answer(self, argv, sock, env=None):
        if os.path.exists(sock):
            os.unlink(sock)
        p = subprocess.Popen(["systemd-socket-activate", "-l", sock, "--fdname=varlink", *argv],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert time.monotonic() < deadline, "systemd-socket-activate did not listen"
            time.sleep(0.005)
        time.sleep(0.2)     # (the trace in fig5 subtracts these 200 ms)
        t = time.monotonic()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(sock)
        s.sendall(b'{"method":"io.vlease.Broker.Get","parameters":{"name":"db"}}\0')
        data = b""
        while b"\0" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        elapsed = (time.monotonic() - t) * 1e3
        s.close()
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        return elapsed, data.startswith(b'{"parameters"')

    def fig5(self):
        log("figure 5: cold start under socket activation")
        cold = Broker(self.config, role_id=self.role[0], secret_id=self.role[1])
        cold.write_config()
        sock = os.path.join(self.tmp, "cold.sock")
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID")}
        v, b = [], []
        ok = True
        trace = None
        for _ in range(self.a["cold_runs"]):
            self.vd.clear_requests()
            t_wall = time.time()
            ms, good = self.first_answer([VLEASED, "--config", cold.config_path], sock, env)
            if trace is None:
                # what the broker asked Vault for on its way to the first answer, ms after connect()
                trace = [(r["method"], r["path"], r["status"], round((r["time"] - t_wall) * 1e3 - 200, 1))
                         for r in self.vd.requests()]
            v.append(ms)
            ok = ok and good
            ms, good = self.first_answer([BASELINE, self.reply_path], sock, env)
            b.append(ms)
            ok = ok and good
        shutil.rmtree(cold.dir, ignore_errors=True)
        # what the Vault part alone costs: one AppRole login + one database/creds read straight to vaultdev
        t = time.monotonic()
        st, body, _ = self.vd.api("POST", "auth/approle/login", {"role_id": self.role[0], "secret_id": self.role[1]},
                                  token="")
        tok = body["auth"]["client_token"]
        st2, _, _ = self.vd.api("GET", "database/creds/reader", token=tok)
        direct = (time.monotonic() - t) * 1e3
        self.res["figures"]["5_cold_start"] = {"vleased_ms": v, "baseline_ms": b, "ok": ok,
                                               "vleased_p50_ms": pct(v, 50), "baseline_p50_ms": pct(b, 50),
                                               "direct_vault_ms": direct, "direct_ok": st == 200 and st2 == 200,
                                               "vault_requests_first_run": trace}

    # ---- output ---------------------------------------------------------------------------------
    def table(self):
        f = self.res["figures"]
        rows = []

        def ratio(x, y):
            return f"{x / y:.2f}x" if y else "-"

        for r in f.get("1_cached_get", []):
            v, b = r["vleased"], r["baseline"]
            rows.append(("1", f"cached Get, {r['case']}: req/s", f"{v['throughput']:.0f}", f"{b['throughput']:.0f}",
                         ratio(v["throughput"], b["throughput"])))
            for k, n in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
                rows.append(("1", f"cached Get, {r['case']}: {n} µs", f"{v[k]:.1f}", f"{b[k]:.1f}", ratio(v[k], b[k])))
        if "2_process" in f:
            v, b = f["2_process"]["vleased"], f["2_process"]["baseline"]
            for k, n in (("throughput", "runs/s"), ("p50_us", "p50 µs"), ("p99_us", "p99 µs")):
                rows.append(("2", f"`vlease get` process vs trivial client: {n}", f"{v[k]:.0f}", f"{b[k]:.0f}",
                             ratio(v[k], b[k])))
        if "3_miss_storm" in f:
            bo = f["3_baseline_once"]
            for r in f["3_miss_storm"]:
                rows.append(("3", f"{r['case']}: Vault calls", str(r["vault_calls"]), "-", "-"))
                rows.append(("3", f"{r['case']}: time to last answer ms", f"{r['last_answer_ms']:.1f}",
                             f"{(bo['t_last_answer_ns'] - bo['t_start_ns']) / 1e6:.1f}", "-"))
                rows.append(("3", f"{r['case']}: errors", str(r["errors"]), "0", "-"))
                runs = len(r["hit_p99_ratios"])
                rows.append(("3", f"{r['case']}: p99 of paced cached hits during the storm / before it, median of "
                             f"{runs} runs (baseline: hits on it meanwhile)",
                             f"{r['hit_p99_ratio']:.2f}x ({', '.join(f'{x:.2f}' for x in r['hit_p99_ratios'])})",
                             f"{r['baseline_hit_p99_ratio']:.2f}x", f"{r['hit_p99_ratio']:.2f}x"))
                q, st = r["hits_quiet"], r["hits_storm"]
                rows.append(("3", f"{r['case']}: the median run, p99 µs during / before (hits in the storm)",
                             f"{st['p99_us']:.0f} / {q['p99_us']:.0f} ({st['n']})",
                             f"{r['baseline_hits_storm']['p99_us']:.0f} / {r['baseline_hits_quiet']['p99_us']:.0f}", "-"))
                pv, pb = r["pooled"]["vleased"], r["pooled"]["baseline"]
                rows.append(("3", f"{r['case']}: all {runs} runs' hits pooled, p99 µs during / before (hits in the "
                             "storms); baseline: its hits in the same windows",
                             f"{pv['during']['p99_us']:.0f} / {pv['quiet']['p99_us']:.0f} ({pv['during']['n']})",
                             f"{pb['during']['p99_us']:.0f} / {pb['quiet']['p99_us']:.0f}",
                             ratio(pv['during']['p99_us'], pb['during']['p99_us'])))
        if "3_hit_burst" in f:
            r = f["3_hit_burst"]
            rows.append(("3", f"{r['case']}: Vault calls / errors", f"{r['vault_calls']} / {r['errors']}", "-", "-"))
            rows.append(("3", f"{r['case']}: p99 of paced cached hits during it / before it, median of "
                         f"{len(r['hit_p99_ratios'])} runs",
                         f"{r['hit_p99_ratio']:.2f}x ({', '.join(f'{x:.2f}' for x in r['hit_p99_ratios'])})",
                         f"{r['baseline_hit_p99_ratio']:.2f}x", f"{r['hit_p99_ratio']:.2f}x"))
            one = f["3_miss_storm"][0]
            rows.append(("3", "what the misses add: one-key miss storm's median ratio over the same burst's",
                         f"{one['hit_p99_ratio'] / r['hit_p99_ratio']:.2f}x", "-", "-"))
        if "3_baseline_burst" in f:
            r = f["3_baseline_burst"]
            rows.append(("3", f"{r['case']}: p99 of the baseline's paced hits during it / before it, median of "
                         f"{len(r['baseline_hit_p99_ratios'])} runs", "-",
                         f"{r['baseline_hit_p99_ratio']:.2f}x ({', '.join(f'{x:.2f}' for x in r['baseline_hit_p99_ratios'])})",
                         "-"))
        if "4_scale" in f:
            s = f["4_scale"]
            p = s["populate"]
            rows.append(("4", f"leases held (wanted {s['leases_wanted']}) / PostgreSQL roles",
                         f"{s['held']} / {s['pg_roles']}", "-", "-"))
            rows.append(("4", "population: seconds / Gets per s / errors",
                         f"{p['seconds']:.1f} / {p['throughput']:.0f} / {p['errors']}", "-", "-"))
            rows.append(("4", "RSS of vleased MiB (at start)", f"{s['rss_kib'] / 1024:.1f} ({s['rss_start_kib'] / 1024:.1f})",
                         "40 (target)", ratio(s["rss_kib"] / 1024, 40)))
            if s["held"]:
                rows.append(("4", "RSS per lease, bytes", f"{(s['rss_kib'] - s['rss_start_kib']) * 1024 / s['held']:.0f}",
                             "-", "-"))
            w = s["table_write"]
            rows.append(("4", f"lease table rewritten at a journal fold, {w['leases']} leases ({w['bytes'] / 2**20:.1f} MiB): "
                         "ms, vs one fwrite() of its bytes", f"{w['table_ms']:.1f}", f"{w['baseline_ms']:.1f}",
                         ratio(w["table_ms"], w["baseline_ms"])))
            rows.append(("4", "journal line of one new lease, µs", f"{w['line_us']:.2f}", "-", "-"))
            g = s["get_full"]
            rows.append(("4", "cached Get with the cache full, 8 clients: req/s", f"{g['vleased']['throughput']:.0f}",
                         f"{g['baseline']['throughput']:.0f}", ratio(g["vleased"]["throughput"], g["baseline"]["throughput"])))
            rows.append(("4", "cached Get with the cache full, 8 clients: p99 µs", f"{g['vleased']['p99_us']:.1f}",
                         f"{g['baseline']['p99_us']:.1f}", ratio(g["vleased"]["p99_us"], g["baseline"]["p99_us"])))
            i = s["idle"]
            rows.append(("4", f"idle {i['seconds']:.0f} s, no renewal due: CPU s / wakeups / Vault calls",
                         f"{i['cpu_s']:.2f} / {i['wakeups']} / {i['vault_calls']}", "0 / 0 / 0 (target)", "-"))
            sp = s["spread"]
            rows.append(("4", f"renewals, {sp['leases']} leases TTL {sp['ttl_s']} s: peak 1 s window / average per s",
                         f"{sp['peak_1s']} / {sp['avg_per_s']:.1f}", "2x (target)",
                         f"{sp['peak_ratio']:.2f}x" if sp["peak_ratio"] else "-"))
        if "5_cold_start" in f:
            c = f["5_cold_start"]
            rows.append(("5", "cold start to first answer (socket activation), ms p50",
                         f"{c['vleased_p50_ms']:.1f}", f"{c['baseline_p50_ms']:.1f}",
                         ratio(c["vleased_p50_ms"], c["baseline_p50_ms"])))
            rows.append(("5", "  of which: AppRole login + creds read straight to vaultdev, ms",
                         f"{c['direct_vault_ms']:.1f}", "-", "-"))
        return rows

    def checks(self):
        f = self.res["figures"]
        c = {}
        g64 = next((r for r in f.get("1_cached_get", []) if r["case"] == "64 clients"), None)
        if g64:
            c["get64_throughput_ge_0.7x"] = g64["vleased"]["throughput"] >= 0.7 * g64["baseline"]["throughput"]
            c["get64_p99_le_1.5x"] = g64["vleased"]["p99_us"] <= 1.5 * g64["baseline"]["p99_us"]
        if "4_scale" in f:
            s = f["4_scale"]
            c["rss_le_40MiB"] = s["rss_kib"] <= 40 * 1024
            c["no_wakeup_when_idle"] = s["idle"]["wakeups"] == 0
            c["renewal_peak_le_2x_avg"] = bool(s["spread"]["peak_ratio"]) and s["spread"]["peak_ratio"] <= 2.0
        for r in f.get("3_miss_storm", []):
            c[f"storm_hit_p99_le_2x ({r['case']})"] = r["hit_p99_ratio"] is not None and r["hit_p99_ratio"] <= 2.0
        self.res["checks"] = c

    def write(self):
        os.makedirs(self.out, exist_ok=True)
        rows = self.table()
        self.checks()
        self.res["table"] = [dict(zip(("figure", "measure", "vleased", "baseline", "ratio"), r)) for r in rows]
        self.res["elapsed_s"] = time.monotonic() - T0
        self.res["machine"] = {"cpus": os.cpu_count(), "kernel": os.uname().release}
        md = [f"| fig | measure | vleased | baseline | ratio |", "|---|---|---|---|---|"]
        md += [f"| {' | '.join(r)} |" for r in rows]
        md.append("")
        md.append("Targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in self.res["checks"].items()))
        text = "\n".join(md) + "\n"
        with open(os.path.join(self.out, "results.md"), "w") as fh:
            fh.write(f"vlease bench ({self.res['mode']} run, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                     f"{os.cpu_count()} CPUs, {self.res['elapsed_s']:.0f} s)\n\n" + text)
        with open(os.path.join(self.out, "results.json"), "w") as fh:
            json.dump(self.res, fh, indent=1)
        self.plot()
        print(text)
        print(f"written: {self.out}/results.md, results.json, latency.svg")

    def plot(self):
        f = self.res["figures"].get("1_cached_get", [])
        if not f or not shutil.which("gnuplot"):
            return
        files, plots = [], []
        for i, r in enumerate(f):
            for who in ("vleased", "baseline"):
                p = os.path.join(self.tmp, f"cdf-{i}-{who}.dat")
                with open(p, "w") as fh:
                    for pc, us in r[who]["cdf"]:
                        # x: latency, y: 1/(1-p) so that the tail is visible (p50 = 2, p99 = 100, p99.9 = 1000)
                        fh.write(f"{us} {1.0 / max(1e-6, 1.0 - pc / 100.0)}\n")
                files.append(p)
                plots.append(f"'{p}' using 1:2 with lines lw 2 dt {1 if who == 'vleased' else 2} "
                             f"lc {i + 1} title '{who}, {r['case']}'")
        script = f"""set terminal svg size 1000,620 dynamic font 'sans,11'
set output '{os.path.join(self.out, "latency.svg")}'
set title 'Cached Get latency distribution: vleased (solid) vs baseline (dashed), same run'
set logscale x
set logscale y
set xlabel 'latency (µs)'
set ylabel 'percentile'
set ytics ('p0' 1, 'p50' 2, 'p90' 10, 'p99' 100, 'p99.9' 1000, 'p99.99' 10000)
set key outside right
set grid
plot {", ".join(plots)}
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=False)

    def close(self):
        for fn in reversed(self.cleanup):
            try:
                fn()
            except Exception as e:  # keep cleaning up
                log(f"cleanup: {e}")
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=os.path.join(SRC, "build", "bench"))
    ap.add_argument("--only", default="12345")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a size, e.g. users=20 creds=50 idle_sec=10 pop_conns=16")
    ap.add_argument("--perf", action="store_true", help="perf cpu-clock profile of vleased during figures 1 and 4")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tools/bench: must run as root (local users, PostgreSQL)")
    b = Bench(args)
    try:
        b.setup()
        for n in args.only:
            getattr(b, f"fig{n}")()
        b.write()
    finally:
        b.close()
    log("done")


if __name__ == "__main__":
    main()
