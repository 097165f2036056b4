"""Socket activation of the shipped, hardened vleased.service under a real systemd: a local user's
first request starts it, it logs in to vaultdev with the AppRole secrets systemd hands it
(LoadCredential=), and the PostgreSQL login it returns really works."""
import re
import resource


def test_first_request_activates_broker(system, container, pg):
    assert container.unit_property("vleased.service", "ActiveState") == "inactive"
    reply = system.varlink("vltalice", "io.vlease.Broker.Get", {"name": "db-reader"})
    assert "parameters" in reply, (reply, container.journal("vleased.service"))
    cred = reply["parameters"]["credential"]
    assert cred["name"] == "db-reader"
    ok, err = pg.login(cred["data"]["username"], cred["data"]["password"])
    assert ok, err
    assert container.unit_property("vleased.service", "ActiveState") == "active"
    assert container.unit_property("vleased.service", "SubState") == "running"


def test_broker_runs_under_its_sandbox(container):
    """The shipped unit's restrictions hold for the running process."""
    pid = int(container.unit_property("vleased.service", "MainPID"))
    assert pid > 0
    status = container.run(["cat", f"/proc/{pid}/status"], check=True).stdout
    fields = dict(re.findall(r"^(\w+):\s*(.*)$", status, re.M))
    uid = container.run(["id", "-u", "vlease"], check=True).stdout.strip()
    assert fields["Uid"].split() == [uid] * 4
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, (cap, fields[cap])
    limits = container.run(["cat", f"/proc/{pid}/limits"], check=True).stdout
    # LimitMEMLOCK=16M and LimitNOFILE=65536, or the hard limits systemd itself was given when it may
    # not raise them (a host without CAP_SYS_RESOURCE: systemd clamps rather than fails).
    memlock = min(16 << 20, resource.getrlimit(resource.RLIMIT_MEMLOCK)[1])
    nofile = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    assert re.search(r"Max locked memory\s+%d\s+%d\s" % (memlock, memlock), limits), limits
    assert re.search(r"Max open files\s+%d\s+%d\s" % (nofile, nofile), limits), limits
    assert re.search(r"Max core file size\s+0\s+0", limits), limits
    # Its own view of the file system: read-only /usr and /etc, private /tmp, credentials from systemd.
    ns = ["nsenter", "-t", str(pid), "-m", "--"]
    for path in ("/etc", "/usr", "/var/tmp/.."):
        r = container.run(ns + ["findmnt", "-n", "-o", "OPTIONS", "-T", path], check=True)
        assert r.stdout.split(",")[0] == "ro", (path, r.stdout)
    r = container.run(ns + ["findmnt", "-n", "-o", "OPTIONS", "-T", "/var/lib/vlease"], check=True)
    assert r.stdout.split(",")[0] == "rw", r.stdout
    r = container.run(ns + ["findmnt", "-n", "-o", "SOURCE", "-T", "/tmp"], check=True)
    assert "systemd-private-" in r.stdout and "vleased.service" in r.stdout, r.stdout
    creds = container.run(["ls", "/run/credentials/vleased.service"], check=True).stdout.split()
    assert sorted(creds) == ["role_id", "secret_id"]
    env = container.run(["cat", f"/proc/{pid}/environ"], check=True).stdout.split("\0")
    assert "CREDENTIALS_DIRECTORY=/run/credentials/vleased.service" in env
    assert not [e for e in env if "secret" in e.lower() and "CREDENTIALS_DIRECTORY" not in e]
    assert container.unit_property("vleased.service", "StatusErrno") == "0"


def test_other_user_is_denied(system, container):
    reply = system.varlink("vltbob", "io.vlease.Broker.Get", {"name": "db-reader"})
    assert reply.get("error") == "io.vlease.Broker.PermissionDenied", reply


def test_stop_is_clean_and_sockets_stay(system, container):
    container.systemctl("stop", "vleased.service")
    assert container.unit_property("vleased.service", "Result") == "success", container.journal("vleased.service")
    assert container.unit_property("vleased.service", "ExecMainStatus") == "0"
    for u in ("vleased.socket", "vleased-credentials.socket"):
        assert container.unit_property(u, "ActiveState") == "active"
    # ... and the next request activates it again.
    reply = system.varlink("vltalice", "io.vlease.Broker.Get", {"name": "db-reader"})
    assert "parameters" in reply, (reply, container.journal("vleased.service"))
    assert container.unit_property("vleased.service", "ActiveState") == "active"


def test_journal_is_clean(container):
    """The broker starts, serves and stops under the sandbox without errors: no seccomp or
    permission failures, no unit warnings from systemd; then it stops with status 0."""
    container.systemctl("stop", "vleased.service")
    assert container.unit_property("vleased.service", "Result") == "success"
    assert container.unit_property("vleased.service", "ExecMainStatus") == "0"
    log = container.journal("vleased.service")
    # The one expected complaint: vltbob's denial, logged with the peer's uid and pid.
    assert re.search(r"Permission denied: peer uid=1001 pid=\d+ may not get credential 'db-reader'", log), log
    bad = [line for line in log.splitlines() if "may not get credential" not in line
           and re.search(r"(?i)operation not permitted|permission denied|seccomp|SIGSYS|core-dump|watchdog"
                        r"|failed|error", line)]
    assert not bad, log
    assert log.count("Started vleased.service") >= 2, log
