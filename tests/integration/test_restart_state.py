"""Restart without systemd (--listen, --state-dir): the lease table alone, no fd store.

After kill -9 the next process reloads the table: a user's lease that was not idle is kept and renewed
(never handed out again: without the secret handover the next Get gets a fresh credential), the token
that created it is kept alive by accessor, and Release revokes old and new; a lease that was already
idle is revoked at start. Nothing is orphaned in Vault and nothing still held is revoked."""
import json
import os
import time

from broker import wait_for


def start_with_state(make_broker, tmp_path, broker_section=""):
    b = make_broker(broker_section=broker_section, start=False)
    state = str(tmp_path / "state")
    os.mkdir(state, 0o700)
    b.start(args=["--state-dir", state])
    return b, state


def table_leases(state):
    return json.load(open(os.path.join(state, "leases.json")))["leases"]


def saved_leases(state):
    """What the next start reads: leases.json, and the lines of leases.journal that extend it (new
    leases and renewals go to the journal; the table takes them within a minute)."""
    table = json.load(open(os.path.join(state, "leases.json")))
    leases = {(e["owner"], e["credential"], e.get("lease_id")): e for e in table["leases"]}
    path = os.path.join(state, "leases.journal")
    for line in open(path).read().splitlines() if os.path.exists(path) else []:
        e = json.loads(line)
        if e["journal_seq"] == table.get("journal_seq", 0):
            leases[(e["owner"], e["credential"], e.get("lease_id"))] = e
    return list(leases.values())


def test_kill9_keeps_renewing_the_held_lease_and_release_revokes_it(make_broker, vaultdev, pg, tmp_path):
    b, state = start_with_state(make_broker, tmp_path, "idle_release_sec = 3600")
    rc, old, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    # before the reply the new lease was appended to the journal, not the table rewritten
    journal = os.path.join(state, "leases.journal")
    lines = [json.loads(x) for x in open(journal).read().splitlines()]
    assert len(lines) == 1 and lines[0]["owner"].startswith("uid:") and lines[0]["lease_id"], lines
    assert old["data"]["password"] not in open(journal).read(), "a secret reached the journal"
    assert oct(os.stat(journal).st_mode & 0o777) == "0o600"
    assert table_leases(state) == [], "the table was rewritten before the reply: nothing to test"

    b.kill()
    vaultdev.clear_requests()
    b.start(args=["--state-dir", state])
    assert "Restored 'db-reader' of uid:" in b.log()
    # the old token is kept alive by accessor, the lease by renewal
    wait_for(lambda: vaultdev.requests("auth/token/renew-accessor"), 15, what="a renew-accessor call")
    ok, err = pg.login(old["data"]["username"], old["data"]["password"])
    assert ok, err
    # no secret handover: a fresh credential for the next Get; the old lease lives on until released
    rc, new, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    assert new["data"]["username"] != old["data"]["username"]
    # the start folded the journal into the table; both hold the two leases and never a secret
    ids = [e["lease_id"] for e in saved_leases(state)]
    assert len(set(ids)) == 2 and lines[0]["lease_id"] in ids, ids
    for f in ("leases.json", "leases.journal"):
        text = open(os.path.join(state, f)).read()
        assert old["data"]["password"] not in text and new["data"]["password"] not in text, f"a secret in {f}"
        assert oct(os.stat(os.path.join(state, f)).st_mode & 0o777) == "0o600"
    st = b.call("root", "io.vlease.Broker.Status")["parameters"]
    assert sum(1 for h in st["held"] if h["credential"] == "db-reader") == 2, st
    r = b.vlease("vlalice", "release", "db-reader")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not pg.role_exists(old["data"]["username"]) and not pg.role_exists(new["data"]["username"]),
             15, what="both roles to be dropped after Release")


def test_lease_idle_before_the_crash_is_revoked_at_start(make_broker, vaultdev, pg, tmp_path):
    b, state = start_with_state(make_broker, tmp_path, "idle_release_sec = 2")
    rc, old, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    b.kill()
    # let it become idle while no broker runs (a deadline on the clock: nothing else to poll)
    deadline = time.monotonic() + 2.5
    wait_for(lambda: time.monotonic() > deadline, 5, what="the idle period to pass")
    b.start(args=["--state-dir", state])
    try:
        wait_for(lambda: "'db-reader' of uid:" in b.log() and "is no longer held: revoking it" in b.log(), 10,
                 what="the start to decide about the idle lease")
    except AssertionError as e:
        raise AssertionError("%s\n%s\n%s" % (e, open(os.path.join(state, "leases.json")).read(), b.log()))
    wait_for(lambda: not pg.role_exists(old["data"]["username"]), 15, what="the idle lease to be revoked")
    wait_for(lambda: json.load(open(os.path.join(state, "leases.json")))["leases"] == [], 10,
             what="the table to empty")


def test_clean_stop_keeps_leases_for_the_next_start(make_broker, vaultdev, pg, tmp_path):
    """revoke_on_stop = no (the default): a stop leaves the lease in the table and in Vault."""
    b, state = start_with_state(make_broker, tmp_path)
    rc, old, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    b.stop()
    assert len(json.load(open(os.path.join(state, "leases.json")))["leases"]) == 1
    assert pg.role_exists(old["data"]["username"])
    b.start(args=["--state-dir", state])
    assert "Restored 'db-reader'" in b.log()
    r = b.vlease("vlalice", "release", "db-reader")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not pg.role_exists(old["data"]["username"]), 15, what="the role to be dropped")


SESSION_HOLDER = r"""
import sys
sys.path.insert(0, sys.argv[2])
from varlink import Connection
c = Connection(sys.argv[1])
sid = c.call("io.vlease.Broker.OpenSession", {"user": "vlalice", "wait_usec": 0})["session"]
print(sid, flush=True)
sys.stdin.readline()     # hold the session (the leader) until told to go
"""


def test_pam_session_survives_kill9_and_its_end_releases(make_broker, vaultdev, pg, tmp_path):
    """The table carries sessions (leader pid and start time): after kill -9 a session whose leader
    still runs is taken over, keeps its user's lease although it was idle, and when the leader exits
    the session ends and release_on_logout revokes the lease."""
    import subprocess
    from broker import PY, SRC
    b, state = start_with_state(make_broker, tmp_path, "idle_release_sec = 2")
    holder = subprocess.Popen([PY, "-c", SESSION_HOLDER, b.socket, os.path.join(SRC, "tests", "lib")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        sid = holder.stdout.readline().strip()
        assert len(sid) == 32, sid
        rc, cred, err = b.get("vlalice", "db-reader")
        assert rc == 0, err
        wait_for(lambda: json.load(open(os.path.join(state, "leases.json"))).get("sessions"), 10,
                 what="the session in the table")
        b.kill()
        deadline = time.monotonic() + 2.5          # idle by idle_release_sec, but the session holds it
        wait_for(lambda: time.monotonic() > deadline, 5, what="the idle period to pass")
        b.start(args=["--state-dir", state])
        wait_for(lambda: f"Session {sid[:8]} of vlalice restored" in b.log(), 10, what="the session restored")
        assert "Restored 'db-reader' of uid:" in b.log(), b.log()
        st = b.call("root", "io.vlease.Broker.Status")["parameters"]
        assert st["sessions"] == 1, st
        assert pg.role_exists(cred["data"]["username"])
        # the leader exits: the session ends, its last-logout release revokes the lease
        holder.stdin.close()
        assert holder.wait(10) == 0
        wait_for(lambda: not pg.role_exists(cred["data"]["username"]), 15, what="release at the session's end")
        assert "its leader process exited" in b.log()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_second_broker_on_the_same_socket_or_state_refuses_to_start(make_broker, tmp_path):
    """A second vleased must not take a running one's socket (leaving it unreachable) or its lease
    table (renewing its token and leases as if it were the next start)."""
    import subprocess
    from broker import VLEASED
    b, state = start_with_state(make_broker, tmp_path)
    rc, c, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    assert len(saved_leases(state)) == 1
    table = open(os.path.join(state, "leases.json")).read()

    other = str(tmp_path / "other-run")
    for listen, st, message in ((b.sockdir, str(tmp_path / "other-state"), "Another process is listening on"),
                                (other, state, "Another vleased is using the state directory")):
        os.makedirs(st, 0o700, exist_ok=True)
        r = subprocess.run([VLEASED, "--config", b.config_path, "--listen", listen, "--state-dir", st],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and message in r.stderr, (r.returncode, r.stderr)
    # the first one still answers, on its socket, with its table untouched
    rc, c2, err = b.get("vlalice", "db-reader")
    assert rc == 0 and c2["data"]["username"] == c["data"]["username"], err
    assert open(os.path.join(state, "leases.json")).read() == table


def test_a_renewal_the_table_missed_is_found_again_at_start(make_broker, vaultdev, pg, tmp_path):
    """A renewal reaches the journal when Vault's answer has been read. A kill -9 between Vault's
    answer and the journal line (simulated here by taking that line out) leaves a table whose expiry
    is one renewal behind Vault's: once that saved expiry has passed, the
    next start must still ask Vault (renew) rather than forget a lease that lives on, whose holder
    would lose its credential at the real end, unrenewed and never revoked."""
    vaultdev.write_db_role("crashy", default_ttl="6s", max_ttl="1h")
    b = make_broker(broker_section="idle_release_sec = 3600", start=False,
                    credentials="\n[credential db-crashy]\npath = database/creds/crashy\nallow_users = vlalice\n")
    state = str(tmp_path / "state")
    os.mkdir(state, 0o700)
    b.start(args=["--state-dir", state])
    vaultdev.clear_requests()
    rc, cred, err = b.get("vlalice", "db-crashy")
    assert rc == 0, err
    user, password = cred["data"]["username"], cred["data"]["password"]
    # the second renewal: the next one comes >= 3.6 s later, so the saved expiry is well before the real one
    wait_for(lambda: len(vaultdev.requests("sys/leases/renew")) >= 2, 15, what="two renewals")
    b.kill()
    killed = time.time()
    path = os.path.join(state, "leases.journal")
    lines = open(path).read().splitlines()
    behind = [x for x in lines if json.loads(x).get("renewals", 0) < 2]
    assert len(behind) < len(lines), f"no line of the second renewal in the journal: {lines}"
    with open(path, "w") as f:
        f.write("".join(x + "\n" for x in behind))
    saved = saved_leases(state)
    assert len(saved) == 1 and saved[0].get("renewals", 0) == 1, saved
    saved_end = saved[0]["expires_usec"] / 1e6
    wait_for(lambda: time.time() > saved_end + 0.3, 10, what="the saved expiry to pass")
    assert pg.role_exists(user)
    vaultdev.clear_requests()
    b.start(args=["--state-dir", state])
    wait_for(lambda: any(r["status"] == 200 for r in vaultdev.requests("sys/leases/renew")), 10,
             what="the restored lease to be renewed")
    # past the end the killed process gave it, the credential still logs in
    wait_for(lambda: time.time() > killed + 6 + 0.5, 10, what="the lease's end without the new renewal")
    ok, err = pg.login(user, password)
    assert ok, f"{err}\n{b.log()}"
    assert "has expired" not in b.log()
    r = b.vlease("vlalice", "release", "db-crashy")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not pg.role_exists(user), 15, what="the role to be dropped after Release")


def test_a_damaged_table_is_set_aside_not_overwritten(make_broker, vaultdev, pg, tmp_path):
    """leases.json damaged (by hand, a full disk): the next start cannot use it, but the leases it names
    are alive in Vault and nobody else knows them: it is kept under a name of its own, and the log
    says where, instead of the next save overwriting it. The journal that extends it goes with it."""
    b, state = start_with_state(make_broker, tmp_path, "idle_release_sec = 3600")
    rc, cred, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    b.kill()
    path = os.path.join(state, "leases.json")
    text = open(path).read()
    journal = open(os.path.join(state, "leases.journal")).read()
    lease_id = json.loads(journal.splitlines()[0])["lease_id"]
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])
    b.start(args=["--state-dir", state])
    kept = [n for n in os.listdir(state) if n.startswith("leases.json.damaged-")]
    assert len(kept) == 1, os.listdir(state)
    assert open(os.path.join(state, kept[0])).read() == text[: len(text) // 2]
    assert f"kept as {os.path.join(state, kept[0])}" in b.log(), b.log()
    kept_journal = [n for n in os.listdir(state) if n.startswith("leases.journal.damaged-")]
    assert len(kept_journal) == 1, os.listdir(state)
    assert lease_id in open(os.path.join(state, kept_journal[0])).read()
    assert f"kept as {os.path.join(state, kept_journal[0])}" in b.log(), b.log()
    # the broker goes on with an empty table of its own
    rc, fresh, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    ids = [e["lease_id"] for e in saved_leases(state)]
    assert len(ids) == 1 and lease_id not in ids, ids
    r = b.vlease("vlalice", "release", "db-reader")
    assert r.returncode == 0, r.stderr
    # the old lease is the operator's to revoke; this test does it for them
    assert vaultdev.api("PUT", "sys/leases/revoke", {"lease_id": lease_id})[0] == 204
    wait_for(lambda: not pg.role_exists(cred["data"]["username"]), 15, what="the old role to go")


def test_a_full_disk_is_named_and_nothing_is_lost_once_there_is_room(make_broker, vaultdev, pg, tmp_path):
    """The state directory fills up (a tiny tmpfs here): the journal append fails, the error is
    named, no part of a line is left behind to swallow the next one, and everyone is still served.
    Once there is room the table takes every lease again, and a kill -9 then loses none."""
    import subprocess
    state = str(tmp_path / "state")
    os.mkdir(state, 0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", state], check=True)
    try:
        b = make_broker(broker_section="idle_release_sec = 3600", start=False)
        b.start(args=["--state-dir", state])
        filler = os.path.join(state, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"x" * 64) > 0:
                pass
        except OSError:
            pass            # ENOSPC: the disk is full
        finally:
            os.close(fd)
        rc, alice, err = b.get("vlalice", "db-reader")
        assert rc == 0, err
        log = b.log()
        assert "Failed to append to" in log and "No space left on device" in log, log
        journal = open(os.path.join(state, "leases.journal")).read()
        assert journal == "" or journal.endswith("\n"), "a part of a line was left in the journal"

        os.unlink(filler)
        rc, bob, err = b.get("vlbob", "db-reader")
        assert rc == 0, err
        wait_for(lambda: len(saved_leases(state)) == 2 and not open(os.path.join(state, "leases.journal")).read(),
                 10, what="the table to hold both leases once there is room")
        b.kill()
        b.start(args=["--state-dir", state])
        assert b.log().count("Restored 'db-reader' of uid:") == 2, b.log()
        for user in ("vlalice", "vlbob"):
            r = b.vlease(user, "release", "db-reader")
            assert r.returncode == 0, r.stderr
        wait_for(lambda: not pg.role_exists(alice["data"]["username"]) and not pg.role_exists(bob["data"]["username"]),
                 15, what="both roles to be dropped after Release")
        b.stop()
    finally:
        subprocess.run(["umount", "-l", state], check=False)
