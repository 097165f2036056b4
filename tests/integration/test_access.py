"""Per-user leases over the peer-authenticated socket: isolation, policy, repeat gets."""
import subprocess

from broker import wait_for


def held(reply):
    return reply["parameters"]["held"]


def test_each_user_gets_own_working_login(make_broker, pg, vaultdev):
    b = make_broker()
    vaultdev.clear_requests()
    rc, alice, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    rc, bob, err = b.get("vlbob", "db-reader")
    assert rc == 0, err
    rc, dave, err = b.get("vldave", "db-reader")        # allowed through allow_groups
    assert rc == 0, err

    names = {c["data"]["username"] for c in (alice, bob, dave)}
    assert len(names) == 3, "each user must get their own PostgreSQL user"
    for c in (alice, bob, dave):
        ok, msg = pg.login(c["data"]["username"], c["data"]["password"])
        assert ok, msg
        assert c["name"] == "db-reader"
        assert c["lease"]["renewable"] is True
        assert c["lease"]["expires_usec"] > c["lease"]["issued_usec"]

    # Repeated gets are served from the cache: same lease, no new Vault read.
    for _ in range(3):
        rc, again, err = b.get("vlalice", "db-reader")
        assert rc == 0, err
        assert again["data"] == alice["data"]
    assert len(vaultdev.requests("database/creds/")) == 3


def test_user_not_allowed_is_denied(make_broker, vaultdev):
    b = make_broker()
    vaultdev.clear_requests()
    r = b.vlease("vlcarol", "get", "db-reader")
    assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
    assert "denied" in r.stderr.lower()
    assert r.stdout == ""
    reply = b.call("vlcarol", "io.vlease.Broker.Get", {"name": "db-reader"})
    assert reply["error"] == "io.vlease.Broker.PermissionDenied"
    assert vaultdev.requests("database/creds/") == []
    # The denial is logged with the peer's uid and pid.
    assert "db-reader" in b.log()

    r = b.vlease("vlalice", "get", "no-such-thing")
    assert r.returncode == 3, (r.returncode, r.stderr)
    reply = b.call("vlalice", "io.vlease.Broker.Get", {"name": "no-such-thing"})
    assert reply["error"] == "io.vlease.Broker.NoSuchCredential"
    assert reply["parameters"]["name"] == "no-such-thing"


def test_bob_cannot_see_or_release_alices_lease(make_broker, pg):
    b = make_broker()
    rc, alice, _ = b.get("vlalice", "db-reader")
    assert rc == 0
    rc, bob, _ = b.get("vlbob", "db-reader")
    assert rc == 0

    bob_held = held(b.call("vlbob", "io.vlease.Broker.List"))
    assert [h["owner"] for h in bob_held] == [f"uid:{pwd_uid('vlbob')}"]
    alice_status = b.call("vlalice", "io.vlease.Broker.Status")
    assert all(h["owner"] == f"uid:{pwd_uid('vlalice')}" for h in held(alice_status))
    assert "db-reader" in b.call("vlbob", "io.vlease.Broker.List")["parameters"]["allowed"]

    # Root sees everyone's.
    owners = {h["owner"] for h in held(b.call("root", "io.vlease.Broker.List"))}
    assert {f"uid:{pwd_uid('vlalice')}", f"uid:{pwd_uid('vlbob')}"} <= owners

    # bob's Release only ever touches bob's lease.
    r = b.vlease("vlbob", "release", "db-reader")
    assert r.returncode == 0, r.stderr
    assert not pg.role_exists(bob["data"]["username"])
    assert pg.role_exists(alice["data"]["username"])
    ok, msg = pg.login(alice["data"]["username"], alice["data"]["password"])
    assert ok, msg

    # The client's table output lists alice's own lease.
    r = b.vlease("vlalice", "list")
    assert r.returncode == 0 and "db-reader" in r.stdout


def test_client_output_formats(make_broker):
    b = make_broker(credentials="""
[credential db-reader]
path = database/creds/reader
allow_users = vlalice
format = {{username}}:{{password}}
""")
    rc, cred, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    user, pw = cred["data"]["username"], cred["data"]["password"]
    assert cred["formatted"] == f"{user}:{pw}"
    r = b.vlease("vlalice", "get", "db-reader")
    assert r.returncode == 0 and r.stdout.strip() == f"{user}:{pw}"
    r = b.vlease("vlalice", "get", "db-reader", "--field", "password")
    assert r.returncode == 0 and r.stdout.strip() == pw
    r = b.vlease("vlalice", "get", "db-reader", "--field", "nope")
    assert r.returncode != 0
    r = b.vlease("vlalice", "status")
    assert r.returncode == 0
    r = b.vlease("vlalice", "bogus-verb")
    assert r.returncode == 2


def test_broker_unreachable_exit_code(tmp_path):
    from broker import VLEASE
    r = subprocess.run([VLEASE, "--socket", str(tmp_path / "none"), "get", "x"],
                       capture_output=True, text=True)
    assert r.returncode == 6, (r.returncode, r.stderr)


def pwd_uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def test_primary_group_counts(make_broker):
    """A process whose primary gid is an allowed group is allowed, though SO_PEERGROUPS omits it."""
    import grp
    b = make_broker()
    gid = grp.getgrnam("vldbusers").gr_gid
    argv = ["setpriv", "--reuid=vlcarol", f"--regid={gid}", "--clear-groups", "--",
            __import__("broker").VLEASE, "--socket", b.socket, "get", "db-reader", "--field", "username"]
    r = subprocess.run(argv, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = b.vlease("vlcarol", "get", "db-reader")
    assert r.returncode == 4


def test_user_created_after_start_is_allowed(make_broker, users):
    """allow_users names a user who does not exist yet: once created, it is let in without a restart."""
    b = make_broker(credentials="\n[credential db-reader]\npath = database/creds/reader\n"
                                "allow_users = vlalice vllate\n")
    assert "vllate" in b.log()                  # warned about at start
    users.user("vllate")
    try:
        rc, c, err = b.get("vllate", "db-reader")
        assert rc == 0, err
    finally:
        subprocess.run(["userdel", "vllate"], check=False)
        users.users.remove("vllate")
