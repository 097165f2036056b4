"""Real libpam, a real PAM service file (pam_start_confdir, in a temp dir), real local users and a
long-lived PAM driver holding its handle like a login process: sessions provision, survive each
other, release at the last logout, and end when their process is SIGKILLed."""
import time

from broker import wait_for
from pamhelpers import PAM_MODULE, PamDriver, service_dir

PAM_SUCCESS, PAM_SESSION_ERR = 0, 14


def confdir(args="timeout=5", control="optional"):
    return service_dir({
        "vlease-test": f"auth required pam_permit.so\n"
                       f"account required pam_permit.so\n"
                       f"session {control} {PAM_MODULE} {args}\n",
    })


def status(b):
    return b.call("root", "io.vlease.Broker.Status")["parameters"]


def held(b, owner_uid, name="db-reader"):
    return [h for h in status(b)["held"] if h["owner"] == f"uid:{owner_uid}" and h["credential"] == name]


def driver(b, user, args=None):
    d = PamDriver(confdir(args or f"socket={b.socket} timeout=5"), "vlease-test", user)
    assert d.cmd("tty pts/7") == "ok"
    return d


def test_open_provisions_and_first_get_needs_no_vault(make_broker, vaultdev, pg, users):
    b = make_broker()
    alice = users.user("vlpalice")
    vaultdev.clear_requests()
    s = driver(b, "vlpalice")
    assert s.rc("open") == PAM_SUCCESS
    # the lease is live as soon as open_session returns
    assert held(b, alice), status(b)
    reads = vaultdev.requests("database/creds/")
    assert len(reads) == 1
    rc, cred, err = b.get("vlpalice", "db-reader")
    assert rc == 0, err
    assert len(vaultdev.requests("database/creds/")) == 1, "the first vlease get went to Vault"
    ok, msg = pg.login(cred["data"]["username"], cred["data"]["password"])
    assert ok, msg
    assert status(b)["sessions"] == 1
    assert s.rc("close") == PAM_SUCCESS
    s.end()
    wait_for(lambda: not pg.role_exists(cred["data"]["username"]), 15, what="the role to be revoked")
    assert status(b)["sessions"] == 0
    assert "Session" in b.log() and "Last session of vlpalice ended" in b.log()


def test_two_sessions_tracked_by_id(make_broker, vaultdev, pg, users):
    b = make_broker()
    alice = users.user("vlpalice")
    s1 = driver(b, "vlpalice")
    assert s1.rc("open") == PAM_SUCCESS
    s2 = driver(b, "vlpalice")
    assert s2.rc("open") == PAM_SUCCESS
    rc, cred, err = b.get("vlpalice", "db-reader")
    assert rc == 0, err
    role = cred["data"]["username"]
    assert status(b)["sessions"] == 2

    # the first closes (and a second close of it changes nothing): the lease stays
    assert s1.rc("close") == PAM_SUCCESS
    assert s1.rc("close") == PAM_SUCCESS     # nothing left to close in this handle
    s1.end()
    wait_for(lambda: status(b)["sessions"] == 1, 5, what="the broker to see the first session end")
    assert held(b, alice), status(b)
    assert pg.role_exists(role)
    rc, cred2, err = b.get("vlpalice", "db-reader")
    assert rc == 0 and cred2["data"]["username"] == role
    assert pg.login(role, cred2["data"]["password"])[0]

    # the last one closes: the role is gone
    assert s2.rc("close") == PAM_SUCCESS
    s2.end()
    wait_for(lambda: not pg.role_exists(role), 15, what="the role to be revoked")
    wait_for(lambda: not held(b, alice), 5, what="the lease to leave the table")


def test_killed_session_process_ends_the_session(make_broker, vaultdev, pg, users):
    b = make_broker()
    s = driver(b, "vlpalice")
    assert s.rc("open") == PAM_SUCCESS
    rc, cred, err = b.get("vlpalice", "db-reader")
    assert rc == 0, err
    assert status(b)["sessions"] == 1
    s.kill()        # SIGKILL: close_session never runs
    wait_for(lambda: status(b)["sessions"] == 0, 5, what="the broker to see the session end")
    wait_for(lambda: not pg.role_exists(cred["data"]["username"]), 15, what="the role to be revoked")
    assert "its connection closed" in b.log()


def test_session_of_other_user_and_bob_keeps_his(make_broker, vaultdev, pg, users):
    b = make_broker()
    a = driver(b, "vlpalice")
    bo = driver(b, "vlpbob")
    assert a.rc("open") == PAM_SUCCESS and bo.rc("open") == PAM_SUCCESS
    ra = b.get("vlpalice", "db-reader")[1]["data"]["username"]
    rb = b.get("vlpbob", "db-reader")[1]["data"]["username"]
    assert ra != rb
    assert a.rc("close") == PAM_SUCCESS
    a.end()
    wait_for(lambda: not pg.role_exists(ra), 15, what="alice's role to be revoked")
    assert pg.role_exists(rb)
    assert bo.rc("close") == PAM_SUCCESS
    bo.end()


def test_release_on_logout_no_keeps_the_lease(make_broker, vaultdev, pg, users):
    b = make_broker(credentials="""
[credential db-keep]
path = database/creds/reader
allow_users = vlpalice
provision = yes
release_on_logout = no
""")
    alice = users.user("vlpalice")
    s = driver(b, "vlpalice")
    assert s.rc("open") == PAM_SUCCESS
    assert held(b, alice, "db-keep")
    assert s.rc("close") == PAM_SUCCESS
    s.end()
    wait_for(lambda: status(b)["sessions"] == 0, 5, what="the broker to see the session end")
    assert held(b, alice, "db-keep")


def test_slow_vault_does_not_hold_the_login(make_broker, vaultdev, pg, users):
    b = make_broker()
    alice = users.user("vlpalice")
    vaultdev.faults(latency_ms=3000)
    s = driver(b, "vlpalice", f"socket={b.socket} timeout=1")
    t0 = time.monotonic()
    assert s.rc("open") == PAM_SUCCESS
    took = time.monotonic() - t0
    vaultdev.reset_faults()
    assert took < 1.5, f"open_session took {took:.2f}s with timeout=1"
    # provisioning goes on in the background
    wait_for(lambda: held(b, alice), 10, what="the background provisioning")
    wait_for(lambda: "ready (in the background)" in b.log(), 5, what="the background log line")
    assert s.rc("close") == PAM_SUCCESS
    s.end()


def test_unreachable_broker_is_session_err(users, tmp_path):
    s = PamDriver(confdir(f"socket={tmp_path}/nothing timeout=1", control="required"), "vlease-test", "vlpalice")
    assert s.rc("open") == PAM_SESSION_ERR
    s.end()
    # a close with no open in this handle (B20): nothing to do, no crash
    s = PamDriver(confdir(f"socket={tmp_path}/nothing timeout=1", control="required"), "vlease-test", "vlpalice")
    assert s.rc("close") == PAM_SUCCESS
    s.end()


def test_close_session_by_its_own_user_only(make_broker, vaultdev, users):
    """CloseSession: root or the session's own user (stacks that close after dropping privileges)."""
    b = make_broker()
    from varlink import Connection
    with Connection(b.socket) as c:
        sid = c.call("io.vlease.Broker.OpenSession", {"user": "vlpalice", "wait_usec": 0})["session"]
        sid2 = c.call("io.vlease.Broker.OpenSession", {"user": "vlpalice", "wait_usec": 0})["session"]
        assert sid != sid2
        r = b.call("vlpbob", "io.vlease.Broker.CloseSession", {"session": sid})
        assert r["error"] == "io.vlease.Broker.PermissionDenied"
        r = b.call("vlpalice", "io.vlease.Broker.CloseSession", {"session": sid})
        assert "error" not in r, r
        r = b.call("vlpalice", "io.vlease.Broker.CloseSession", {"session": sid})
        assert r["error"] == "io.vlease.Broker.NoSuchSession"
        assert status(b)["sessions"] == 1
        assert b.call("vlpalice", "io.vlease.Broker.Status")["parameters"]["sessions"] == 1
        assert b.call("vlpbob", "io.vlease.Broker.Status")["parameters"]["sessions"] == 0
        for user in ("vlpalice", "vlpbob"):
            r = b.call(user, "io.vlease.Broker.OpenSession", {"user": user})
            assert r["error"] == "io.vlease.Broker.PermissionDenied"
            r = b.call(user, "io.vlease.Broker.Login", {"user": user, "password": "x"})
            assert r["error"] == "io.vlease.Broker.PermissionDenied"
        r = b.call("root", "io.vlease.Broker.OpenSession", {"user": "vlp-nosuchuser"})
        assert r["error"] == "io.vlease.Broker.NoSuchUser"
    wait_for(lambda: status(b)["sessions"] == 0, 5, what="the held connection's sessions to end")


def test_session_opening_while_the_last_one_closes_never_gets_a_dying_lease(make_broker, vaultdev, pg, users):
    """B19: the last session closes (its lease is being revoked) while a new one opens: the new one
    gets a fresh lease, never the one on its way out."""
    b = make_broker()
    s1 = driver(b, "vlpalice")
    assert s1.rc("open") == PAM_SUCCESS
    old = b.get("vlpalice", "db-reader")[1]["data"]["username"]
    s2 = driver(b, "vlpalice")
    vaultdev.faults(latency_ms=500)          # keep the revoke in flight while the next session opens
    assert s1.rc("close") == PAM_SUCCESS
    assert s2.rc("open") == PAM_SUCCESS
    vaultdev.reset_faults()
    s1.end()
    wait_for(lambda: not pg.role_exists(old), 15, what="the old role to be revoked")
    rc, cred, err = b.get("vlpalice", "db-reader")
    assert rc == 0, err
    assert cred["data"]["username"] != old
    assert pg.login(cred["data"]["username"], cred["data"]["password"])[0]
    assert s2.rc("close") == PAM_SUCCESS
    s2.end()
    wait_for(lambda: not pg.role_exists(cred["data"]["username"]), 15, what="the new role to be revoked")


def test_held_connection_is_close_on_exec(make_broker, users, tmp_path):
    """The user's shell, exec'd by the session process, does not inherit the session's connection
    (it would keep the session alive after the session process ends)."""
    b = make_broker()
    s = driver(b, "vlpalice")
    assert s.rc("open") == PAM_SUCCESS
    out = tmp_path / "fds"
    assert s.rc(f"spawn ls -l /proc/self/fd/ > {out} 2>&1") == 0
    fds = out.read_text()
    assert "socket:" not in fds, fds
    assert s.rc("close") == PAM_SUCCESS
    s.end()
