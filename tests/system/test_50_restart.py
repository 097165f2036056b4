"""Restart, crash and idle exit of the shipped vleased.service under a real systemd (252), while a unit
(LoadCredential=) and a user hold leases of a role with a 6 s TTL (so renewals are frequent):

- `systemctl restart` and `kill -9` (Restart=on-failure): the secrets and the token come back from the
  fd store, so the user gets the same PostgreSQL user, vaultdev sees no new database/creds read and no
  new login, and the unit's credential keeps working past its original TTL;
- stop and start (the fd store is gone): the old leases and the old token stay alive (renewed, the token
  by accessor) until released, while the user's next Get gets a fresh credential;
- idle exit: STOPPING=1 and exit 0 with nothing held, and the next request starts it again.
"""
import json
import os
import re
import time

import pytest

from poll import wait_for
from test_40_credentials import credential_user, install_unit

TTL = 6


@pytest.fixture(scope="module")
def sysrenew(system):
    system.vaultdev.write_db_role("sysrenew", default_ttl=f"{TTL}s", max_ttl="1h")


def vlease_get(container, user="vltalice", name="db-renew"):
    r = container.run(["vlease", "get", name, "--json"], user=user)
    assert r.returncode == 0, (r.stderr, container.journal("vleased.service")[-3000:])
    return json.loads(r.stdout)


def unit_secret(container, unit="vltrenew.service", cred="db-renew"):
    text = container.run(["cat", f"/run/credentials/{unit}/{cred}"], check=True).stdout
    return dict(re.findall(r"(\w+)=(\S+)", text))


def main_pid(container):
    return int(container.unit_property("vleased.service", "MainPID"))


def wait_active(container, other_than=0):
    def up():
        return container.unit_property("vleased.service", "ActiveState") == "active" and \
            main_pid(container) not in (0, other_than)
    wait_for(up, 30, what="vleased.service to be active again")


def assert_no_new_credential_and_no_login(vaultdev):
    creds = vaultdev.requests("database/creds/")
    logins = vaultdev.requests("auth/approle/login")
    assert not creds, f"{len(creds)} new database/creds reads"
    assert not logins, f"{len(logins)} new logins"


def still_works_past(pg, user, password, until):
    """The credential logs in at a time past `until` (its original end)."""
    wait_for(lambda: time.time() > until, TTL * 3, what="the original TTL to pass")
    ok, err = pg.login(user, password)
    assert ok, f"{user} stopped working after its original TTL: {err}"


@pytest.fixture(scope="module")
def holders(system, container, pg, sysrenew):
    """vltrenew.service and vltalice hold db-renew leases."""
    container.systemctl("stop", "vleased.service")
    install_unit(container, "vltrenew.service", "db-renew")
    container.systemctl("start", "vltrenew.service")
    unit_user = credential_user(container, "vltrenew.service")
    cred = vlease_get(container)
    yield {"unit_user": unit_user, "alice": cred}
    container.systemctl("stop", "vltrenew.service", check=False)


def test_systemctl_restart_hands_everything_over(system, container, pg, holders):
    alice = holders["alice"]
    unit = unit_secret(container)
    assert unit["user"] == holders["unit_user"]
    system.vaultdev.clear_requests()
    old = main_pid(container)
    t = time.time()
    container.systemctl("restart", "vleased.service")
    wait_active(container, old)
    again = vlease_get(container)
    assert again["data"]["username"] == alice["data"]["username"]
    assert again["data"]["password"] == alice["data"]["password"]
    log = container.journal("vleased.service")
    assert "Using the Vault token handed over by the previous process" in log, log[-3000:]
    assert_no_new_credential_and_no_login(system.vaultdev)
    still_works_past(pg, unit["user"], unit["password"], t + TTL + 1)
    assert system.vaultdev.requests("sys/leases/renew"), "nothing was renewed after the restart"
    assert_no_new_credential_and_no_login(system.vaultdev)
    status = container.unit_property("vleased.service", "StatusText")
    assert re.match(r"\d+ leases held \(1 users, 1 units\)", status), status


@pytest.mark.parametrize("round", [1, 2])
def test_kill9_restart_on_failure_hands_everything_over(system, container, pg, holders, round):
    alice = holders["alice"]
    unit = unit_secret(container)
    system.vaultdev.clear_requests()
    old = main_pid(container)
    restarts = int(container.unit_property("vleased.service", "NRestarts"))
    t = time.time()
    container.systemctl("kill", "-s", "KILL", "vleased.service")
    wait_active(container, old)
    assert int(container.unit_property("vleased.service", "NRestarts")) == restarts + 1
    again = vlease_get(container)
    assert again["data"]["username"] == alice["data"]["username"]
    assert_no_new_credential_and_no_login(system.vaultdev)
    still_works_past(pg, unit["user"], unit["password"], t + TTL + 1)
    assert_no_new_credential_and_no_login(system.vaultdev)


def test_stop_and_start_keeps_old_leases_and_token_alive(system, container, pg, holders):
    alice = holders["alice"]
    unit = unit_secret(container)
    container.systemctl("stop", "vleased.service")
    system.vaultdev.clear_requests()
    t = time.time()
    container.systemctl("start", "vleased.service")
    log = container.journal("vleased.service")
    wait_for(lambda: system.vaultdev.requests("auth/token/renew-accessor"), 20,
             what="the old token renewed by accessor")
    # the unit still runs: its lease (and credential) lives on, renewed
    still_works_past(pg, unit["user"], unit["password"], t + TTL + 1)
    ok, err = pg.login(alice["data"]["username"], alice["data"]["password"])
    assert ok, err
    # no secret handed over: alice's next Get is a fresh credential; release drops old and new
    fresh = vlease_get(container)
    assert fresh["data"]["username"] != alice["data"]["username"]
    log = container.journal("vleased.service")
    assert "without its secret" in log, log[-3000:]
    r = container.run(["vlease", "release", "db-renew"], user="vltalice")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not pg.role_exists(alice["data"]["username"]) and
             not pg.role_exists(fresh["data"]["username"]), 20, what="alice's old and new roles to go")
    # ... and the unit's at its stop
    container.systemctl("stop", "vltrenew.service")
    wait_for(lambda: not pg.role_exists(unit["user"]), 20, what="the unit's role to go")


def test_idle_exit_and_next_request(system, container, pg, holders):
    conf_d = container.path("/etc/vlease/vleased.conf.d")
    os.makedirs(conf_d, exist_ok=True)
    with open(os.path.join(conf_d, "50-idle.conf"), "w") as f:
        f.write("[broker]\nidle_exit_sec = 2\n")
    try:
        # release what earlier tests left held, then restart to read the drop-in
        for name in ("db-reader", "db-renew"):
            container.run(["vlease", "release", name], user="vltalice")
        container.systemctl("restart", "vleased.service")
        try:
            wait_for(lambda: container.unit_property("vleased.service", "ActiveState") == "inactive", 15,
                     what="the idle exit")
        except AssertionError:
            raise AssertionError("%s\n%s\n%s" % (system.varlink("root", "io.vlease.Broker.Status"),
                                                 container.unit_property("vleased.service", "StatusText"),
                                                 container.journal("vleased.service")[-6000:]))
        assert container.unit_property("vleased.service", "Result") == "success"
        assert container.unit_property("vleased.service", "ExecMainStatus") == "0"
        assert "Idle with no leases and no connections: exiting." in container.journal("vleased.service")
        for u in ("vleased.socket", "vleased-credentials.socket"):
            assert container.unit_property(u, "ActiveState") == "active"
        cred = vlease_get(container, name="db-reader")
        ok, err = pg.login(cred["data"]["username"], cred["data"]["password"])
        assert ok, err
        assert container.unit_property("vleased.service", "ActiveState") == "active"
        r = container.run(["vlease", "release", "db-reader"], user="vltalice")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: container.unit_property("vleased.service", "ActiveState") == "inactive", 30,
                 what="the second idle exit")
    finally:
        os.unlink(os.path.join(conf_d, "50-idle.conf"))


def test_nothing_left_behind_and_journal_clean(system, container, pg):
    """With everything released and every unit stopped, no database user made for the suite is left
    (no lease orphaned across the restarts), and the broker's journal shows no sandbox or fd-store
    trouble."""
    def live_roles():
        return sorted(system.broker_roles() - system.roles_before)
    try:
        wait_for(lambda: not live_roles(), 30, what="every broker-made role to be revoked")
    except AssertionError as e:
        raise AssertionError("%s: %s\n%s" % (e, live_roles(), container.journal("vleased.service")[-8000:]))
    log = container.journal("vleased.service")
    bad = [line for line in log.splitlines()
           if re.search(r"(?i)operation not permitted|seccomp|SIGSYS|core-dump|watchdog|fd store|"
                        r"Failed to watch|Failed to write|Failed to export|cannot be bound", line)]
    assert not bad, "\n".join(bad)
