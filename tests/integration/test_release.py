"""Revocation: Release, idle release, revoke_on_stop; the PostgreSQL role must really be gone."""
from broker import wait_for


def test_release_drops_the_role(make_broker, pg, vaultdev):
    b = make_broker()
    rc, c, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    user, pw = c["data"]["username"], c["data"]["password"]
    assert pg.login(user, pw)[0]
    r = b.vlease("vlalice", "release", "db-reader")
    assert r.returncode == 0, r.stderr
    assert not pg.role_exists(user), "Release returned before the role was dropped"
    ok, _ = pg.login(user, pw)
    assert not ok
    assert b.call("vlalice", "io.vlease.Broker.List")["parameters"]["held"] == []
    # Releasing what one does not hold is not an error worth an exit code; a new get issues anew.
    rc, c2, err = b.get("vlalice", "db-reader")
    assert rc == 0 and c2["data"]["username"] != user


def test_idle_release(make_broker, pg):
    b = make_broker(broker_section="idle_release_sec = 2\n")
    rc, c, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    wait_for(lambda: not pg.role_exists(c["data"]["username"]), 15, interval=0.2,
             what="the idle lease to be revoked")
    assert b.call("vlalice", "io.vlease.Broker.List")["parameters"]["held"] == []


def test_revoke_on_stop(make_broker, pg):
    b = make_broker(broker_section="revoke_on_stop = yes\n")
    names = []
    for u in ("vlalice", "vlbob", "vldave"):
        rc, c, err = b.get(u, "db-reader")
        assert rc == 0, err
        names.append(c["data"]["username"])
    assert all(pg.role_exists(n) for n in names)
    b.stop()
    assert not any(pg.role_exists(n) for n in names)


def test_stop_without_revoke_keeps_roles(make_broker, pg):
    b = make_broker(broker_section="revoke_on_stop = no\n")
    rc, c, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    b.stop()
    assert pg.role_exists(c["data"]["username"]), "a plain stop must not pull credentials"


def test_failed_release_is_retried_until_the_role_is_gone(make_broker, pg, vaultdev):
    """Vault down at Release: the caller hears so, a second Release does not claim success, and the
    broker keeps trying in the background until the database user is really dropped."""
    b = make_broker()
    rc, c, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    user = c["data"]["username"]
    vaultdev.faults(sealed=True)
    try:
        r = b.vlease("vlalice", "release", "db-reader")
        assert r.returncode == 5 and "VaultUnavailable" in r.stderr, (r.returncode, r.stderr)
        r = b.vlease("vlalice", "release", "db-reader")
        assert r.returncode == 5 and "could not be revoked yet" in r.stderr, (r.returncode, r.stderr)
        assert pg.role_exists(user)
    finally:
        vaultdev.reset_faults()
    # no further client action: the background retry drops it
    wait_for(lambda: not pg.role_exists(user), 45, interval=0.5, what="the retried revoke to drop the role")
    assert "retrying in the background" in b.log()
    r = b.vlease("vlalice", "release", "db-reader")
    assert r.returncode == 0, r.stderr


def test_revokes_that_miss_the_stop_are_finished_by_the_next_start(make_broker, pg, vaultdev, tmp_path):
    """revoke_on_stop with Vault sealed: the stop gives up after its timeout, the lease stays in the
    table as one to revoke, and the next start revokes it."""
    import json
    import os
    b = make_broker(broker_section="revoke_on_stop = yes\n", start=False)
    state = str(tmp_path / "state")
    os.mkdir(state, 0o700)
    b.start(args=["--state-dir", state])
    rc, c, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    user = c["data"]["username"]
    vaultdev.faults(sealed=True)
    try:
        b.stop()
        table = json.load(open(os.path.join(state, "leases.json")))
        assert [e.get("retiree") for e in table["leases"]] == [True], table
        assert pg.role_exists(user)
    finally:
        vaultdev.reset_faults()
    b.start(args=["--state-dir", state])
    wait_for(lambda: not pg.role_exists(user), 30, interval=0.5, what="the next start to revoke the lease")
