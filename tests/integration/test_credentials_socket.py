"""The LoadCredential= front door without systemd: a test process plays systemd's client (abstract bind,
connect, shutdown(SHUT_WR), read to EOF) from a cgroup2 directory named like a unit, under
/sys/fs/cgroup/unified/vlease-test.slice/ (removed afterwards).

What is proved: an allowed unit's process gets the credential rendered by its format (or its data as
JSON) and the login works; it is revoked (the PostgreSQL role dropped) once the cgroup empties; every
refusal sends more than systemd's 1 MiB limit (so systemd fails the unit with E2BIG instead of starting
it with an empty file) and logs why; a root process outside the unit's cgroup that names the unit gets
nothing; a non-root user cannot even connect."""
import json
import os
import re
import secrets
import subprocess

import pytest

from broker import PY, SRC, wait_for
from localusers import as_user

CREDCLIENT = os.path.join(SRC, "tests", "lib", "credclient.py")
CGROOT = "/sys/fs/cgroup/unified"
LIMIT = 1024 * 1024

CREDS = """
[credential db-app]
path = database/creds/reader
allow_units = vltapp-*.service
format = postgresql://{{username}}:{{password}}@127.0.0.1/postgres

[credential db-json]
path = database/creds/reader
allow_units = vltapp-*.service

[credential db-users-only]
path = database/creds/reader
allow_users = vlalice
"""


@pytest.fixture
def cgroups():
    """unit_cgroup(unit) -> a fresh cgroup2 dir vlease-test.slice/UNIT; all removed at the end."""
    if not os.path.exists(os.path.join(CGROOT, "cgroup.procs")):
        pytest.skip(f"{CGROOT} is not a cgroup2 mount")
    made = []
    base = os.path.join(CGROOT, "vlease-test.slice")
    os.makedirs(base, exist_ok=True)

    def make(unit):
        d = os.path.join(base, unit)
        os.mkdir(d)
        made.append(d)
        return d

    yield make
    for d in reversed(made):
        wait_for(lambda: _rmdir(d), 10, what=f"{d} to empty")
    try:
        os.rmdir(base)
    except OSError:
        pass


def _rmdir(d):
    try:
        os.rmdir(d)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def unit_name():
    return "vltapp-%s.service" % secrets.token_hex(4)


def client(broker, unit, cred_id, cgroup=None, hold=False, user=None):
    argv = [PY, CREDCLIENT, os.path.join(broker.sockdir, "credentials"), unit, cred_id]
    if cgroup:
        argv.append(cgroup)
    if hold:
        argv.append("--hold")
    if user:
        argv = as_user(user, argv)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    return p, json.loads(line)


def finish(p):
    p.stdin.close()
    assert p.wait(30) == 0


def test_allowed_unit_gets_formatted_credential_and_loses_it_at_stop(make_broker, cgroups, pg):
    b = make_broker(credentials=CREDS)
    unit = unit_name()
    p, out = client(b, unit, "db-app", cgroup=cgroups(unit), hold=True)
    assert out["error"] is None and 0 < out["size"] < 4096, (out, b.log())
    m = re.fullmatch(r"postgresql://([^:]+):([^@]+)@127\.0\.0\.1/postgres", out["data"])
    assert m, out
    user, password = m.groups()
    ok, err = pg.login(user, password)
    assert ok, err
    assert f"Unit {unit}: handed out credential 'db-app'" in b.log()
    # still running: the lease is kept, not idle-released
    st = b.call("root", "io.vlease.Broker.Status")["parameters"]
    assert [h for h in st["held"] if h["owner"] == f"unit:{unit}"], st
    # the "unit" stops: its cgroup empties, the lease is revoked, the role dropped
    finish(p)
    wait_for(lambda: not pg.role_exists(user), 15, what="the unit's PostgreSQL role to be dropped")
    assert f"Unit {unit} stopped: releasing 'db-app'" in b.log()


def test_without_format_data_is_json(make_broker, cgroups, pg):
    b = make_broker(credentials=CREDS)
    unit = unit_name()
    p, out = client(b, unit, "db-json", cgroup=cgroups(unit), hold=True)
    data = json.loads(out["data"])
    assert set(data) >= {"username", "password"}, out
    ok, err = pg.login(data["username"], data["password"])
    assert ok, err
    finish(p)
    wait_for(lambda: not pg.role_exists(data["username"]), 15, what="the role to be dropped")


@pytest.mark.parametrize("case", ["not-allowed", "unknown-id", "users-only", "spoof", "no-address", "bad-address"])
def test_refusals_exceed_systemds_limit_and_are_logged(make_broker, cgroups, vaultdev, case):
    b = make_broker(credentials=CREDS)
    vaultdev.clear_requests()
    sock = os.path.join(b.sockdir, "credentials")
    if case == "not-allowed":
        unit = "vltother-%s.service" % secrets.token_hex(4)
        p, out = client(b, unit, "db-app", cgroup=cgroups(unit))
        why = rf"Permission denied: unit {unit} may not get credential 'db-app'"
    elif case == "unknown-id":
        unit = unit_name()
        p, out = client(b, unit, "no-such-cred", cgroup=cgroups(unit))
        why = rf"Unit {unit}: refusing credential 'no-such-cred': no such credential"
    elif case == "users-only":
        unit = unit_name()
        p, out = client(b, unit, "db-users-only", cgroup=cgroups(unit))
        why = rf"Permission denied: unit {unit} may not get credential 'db-users-only'"
    elif case == "spoof":
        # root, but in the root cgroup, naming an allowed unit (which may even exist)
        unit = unit_name()
        cgroups(unit)
        p, out = client(b, unit, "db-app")
        why = rf"Unit {unit}: refusing credential 'db-app' to pid=\d+: the peer process is in no unit's cgroup"
    elif case == "no-address":
        from credclient import fetch
        data = fetch(sock, "x.service", "db-app", bind=False)
        out = {"size": len(data), "data": data[:10].decode(errors="replace")}
        p = None
        why = r"has no address|address is not"
    else:
        import socket as so
        s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
        s.bind(b"\0deadbeef/unit/../db-app")
        s.connect(sock)
        s.shutdown(so.SHUT_WR)
        data = b""
        while len(data) <= LIMIT:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        out = {"size": len(data), "data": data[:10].decode()}
        p = None
        why = r"address is not"
    if p:
        assert p.wait(30) == 0
    assert out["size"] > LIMIT, out
    assert out["data"].strip() == "", "the filler must not look like a credential"
    assert re.search(why, b.log()), b.log()
    assert not vaultdev.requests("database/creds/"), "a refused request reached Vault"


def test_spoof_from_another_units_cgroup(make_broker, cgroups):
    """A process in unit A's cgroup naming unit B (allowed) gets nothing."""
    b = make_broker(credentials=CREDS)
    a, victim = unit_name(), unit_name()
    cgroups(victim)
    p, out = client(b, victim, "db-app", cgroup=cgroups(a))
    p.wait(30)
    assert out["size"] > LIMIT
    assert f"that process belongs to {a}, not to the unit its address names" in b.log()


def test_ordinary_user_cannot_connect(make_broker, users):
    b = make_broker(credentials=CREDS)
    assert oct(os.stat(os.path.join(b.sockdir, "credentials")).st_mode & 0o777) == "0o600"
    p, out = client(b, unit_name(), "db-app", user="vlalice")
    p.wait(30)
    assert out["error"] and "PermissionError" in out["error"], out
