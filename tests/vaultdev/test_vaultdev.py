"""vaultdev driven by an independent client made for real Vault (Debian's python3-hvac 0.11)."""
import re
import time
import datetime

import hvac
import pytest
import requests

from vaultdev import VaultDev

BASE62 = r"[0-9A-Za-z]"
BROKER_POLICY = '''
path "database/creds/*" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
path "auth/token/create" { capabilities = ["update"] }
path "kv1/*" { capabilities = ["read", "list"] }
path "kv2test/data/+/app" { capabilities = ["read"] }
path "kv2test/data/denied/*" { capabilities = ["deny"] }
'''


def wait_for(pred, timeout=10.0, what="condition"):
    """Poll pred() until it is truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


@pytest.fixture(scope="module")
def vd(vaultdev):
    vaultdev.write_policy("broker", BROKER_POLICY)
    vaultdev.mount("kv1", "kv", {"version": "1"})
    vaultdev.mount("kv2test", "kv", {"version": "2"})
    return vaultdev


@pytest.fixture
def root(vd):
    c = hvac.Client(url=vd.addr, token=vd.root_token)
    yield c
    vd.reset_faults()


@pytest.fixture(scope="module")
def approle(vd):
    role_id, secret_id = vd.setup_approle("broker", policies=["broker"], token_ttl="1h", token_max_ttl="2h")
    return role_id, secret_id


def approle_client(vd, approle):
    c = hvac.Client(url=vd.addr)
    c.auth.approle.login(role_id=approle[0], secret_id=vd._ok(
        "POST", "auth/approle/role/broker/secret-id", {})["data"]["secret_id"])
    return c


# ---------------------------------------------------------------------------------------------------
def test_health_envelope_and_headers(vd, root):
    h = root.sys.read_health_status(method="GET")
    assert h["initialized"] is True and h["sealed"] is False and h["standby"] is False
    assert "cluster_id" in h and isinstance(h["server_time_utc"], int)
    st, js, hdrs = vd.api("GET", "auth/token/lookup-self")
    assert st == 200
    assert hdrs["Content-Type"] == "application/json" and hdrs["Cache-Control"] == "no-store"
    for k in ("request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"):
        assert k in js
    assert js["mount_type"] == "token" and js["auth"] is None and js["warnings"] is None
    vd.faults(vault_flavour="openbao")
    st, js, _ = vd.api("GET", "auth/token/lookup-self")
    assert "mount_type" not in js
    st, js, _ = vd.api("GET", "auth/token/lookup-self", token="hvs.nope")
    assert st == 403 and js == {"errors": ["permission denied"]}
    vd.reset_faults()
    st, js, _ = vd.api("GET", "auth/token/lookup-self", token="hvs.nope")
    assert st == 403 and "permission denied" in js["errors"][0] and "invalid token" in js["errors"][0]
    st, js, _ = vd.api("GET", "../v2/foo")
    st, js, hdrs = vd.api("GET", "sys/health?sealedcode=299&activecode=204", token="")
    assert st == 204


def test_approle_creds_renew_revoke_with_psql(vd, pg, approle, root):
    vd.clear_requests()
    c = hvac.Client(url=vd.addr)
    auth = c.auth.approle.login(role_id=approle[0], secret_id=approle[1])["auth"]
    assert auth["orphan"] is True and auth["renewable"] is True and auth["token_type"] == "service"
    assert auth["metadata"] == {"role_name": "broker"} and auth["policies"] == ["broker", "default"]
    assert auth["lease_duration"] == 3600 and auth["client_token"].startswith("hvs.")
    # the same secret_id may be reused (no num_uses limit)
    assert c.is_authenticated()

    resp = c.read("database/creds/reader")
    assert re.fullmatch(r"database/creds/reader/%s{24}" % BASE62, resp["lease_id"])
    assert resp["renewable"] is True and resp["lease_duration"] == 3600
    user, pw = resp["data"]["username"], resp["data"]["password"]
    assert re.fullmatch(r"v-approle-reader-%s{20}-\d{10}" % BASE62, user)
    assert abs(int(user.rsplit("-", 1)[1]) - time.time()) < 60
    assert re.fullmatch(r"[a-zA-Z0-9-]{20}", pw) and "-" in pw
    assert any(ch.isupper() for ch in pw) and any(ch.islower() for ch in pw) and any(ch.isdigit() for ch in pw)
    ok, err = pg.login(user, pw)
    assert ok, err
    ok, err = pg.login(user, pw + "x")
    assert not ok and "password authentication failed" in err

    # {{expiration}} rendered in Go's 2006-01-02 15:04:05-0700 layout, ttl + 5 s ahead; password hidden
    create = [s for s in vd.sql() if s.startswith('CREATE ROLE "%s"' % user)][-1]
    m = re.search(r"VALID UNTIL '(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4})'", create)
    assert m and "PASSWORD '***'" in create and pw not in create
    exp = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S%z").timestamp()
    assert abs(exp - (time.time() + 3605)) < 30
    vu0 = pg.valid_until(user)
    assert abs(vu0.timestamp() - exp) < 1

    look = c.sys.read_lease(resp["lease_id"])["data"]
    assert look["id"] == resp["lease_id"] and look["path"] == "database/creds/reader"
    assert look["renewable"] is True and look["last_renewal"] is None and 3500 < look["ttl"] <= 3600
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", look["issue_time"])

    ren = c.sys.renew_lease(resp["lease_id"], increment=7200)
    assert ren["lease_id"] == resp["lease_id"] and ren["lease_duration"] == 7200 and ren["warnings"] is None
    vu1 = pg.valid_until(user)
    assert vu1 - vu0 > datetime.timedelta(seconds=3500)
    assert any(s.startswith('ALTER ROLE "%s" VALID UNTIL' % user) for s in vd.sql())
    assert c.sys.read_lease(resp["lease_id"])["data"]["last_renewal"] is not None

    # the request log names the caller
    reads = vd.requests(path_prefix="database/creds/")
    assert [(r["method"], r["status"]) for r in reads] == [("GET", 200)]
    assert reads[0]["display_name"] == "approle" and reads[0]["policies"] == ["broker", "default"]
    assert reads[0]["accessor"] == auth["accessor"] and reads[0]["entity"] == {"role_name": "broker"}
    renews = vd.requests(path_prefix="sys/leases/renew")
    assert len(renews) == 1 and renews[0]["method"] == "PUT" and renews[0]["accessor"] == auth["accessor"]

    # revoke (the broker policy grants it): 204, role dropped with the default statements, login fails
    r = c.sys.revoke_lease(resp["lease_id"])
    assert r.status_code == 204
    assert not pg.role_exists(user)
    ok, err = pg.login(user, pw)
    assert not ok
    assert any(s == 'DROP ROLE IF EXISTS "%s";' % user for s in vd.sql())
    assert any(s.startswith('REVOKE CONNECT ON DATABASE "postgres" FROM "%s"' % user) for s in vd.sql())
    with pytest.raises(hvac.exceptions.InvalidRequest, match="lease not found"):
        c.sys.renew_lease(resp["lease_id"])
    # revoking an unknown lease is idempotent
    assert c.sys.revoke_lease(resp["lease_id"]).status_code == 204


def test_approle_errors_and_secret_id_uses(vd, approle):
    c = hvac.Client(url=vd.addr)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid role or secret ID"):
        c.auth.approle.login(role_id=approle[0], secret_id="wrong")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid role or secret ID"):
        c.auth.approle.login(role_id="nope", secret_id=approle[1])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="missing secret_id"):
        c.auth.approle.login(role_id=approle[0], secret_id="")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="missing role_id"):
        c.auth.approle.login(role_id="", secret_id="x")
    root = hvac.Client(url=vd.addr, token=vd.root_token)
    sid = root.auth.approle.generate_secret_id("broker")["data"]
    assert re.fullmatch(r"[0-9a-f-]{36}", sid["secret_id"])
    rid = root.auth.approle.read_role_id("broker")["data"]["role_id"]
    assert rid == approle[0]
    role = root.auth.approle.read_role("broker")["data"]
    assert role["token_policies"] == ["broker"] and role["token_ttl"] == 3600 and role["token_max_ttl"] == 7200
    vd.setup_approle("once", policies=["broker"], secret_id_num_uses=1)
    rid1 = root.auth.approle.read_role_id("once")["data"]["role_id"]
    sid1 = root.auth.approle.generate_secret_id("once")["data"]["secret_id"]
    c.auth.approle.login(role_id=rid1, secret_id=sid1)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid role or secret ID"):
        c.auth.approle.login(role_id=rid1, secret_id=sid1)


def test_userpass_login_and_identity(vd, pg):
    vd.setup_userpass("alice", "s3cret-pw", policies=["broker"])
    c = hvac.Client(url=vd.addr)
    auth = c.auth.userpass.login("Alice", "s3cret-pw")["auth"]
    assert auth["metadata"] == {"username": "alice"} and auth["orphan"] is True
    me = c.auth.token.lookup_self()["data"]
    assert me["display_name"] == "userpass-alice" and me["path"].lower() == "auth/userpass/login/alice"
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid username or password"):
        hvac.Client(url=vd.addr).auth.userpass.login("alice", "wrong")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid username or password"):
        hvac.Client(url=vd.addr).auth.userpass.login("nobody", "wrong")
    with pytest.raises(hvac.exceptions.InternalServerError, match="missing password"):
        hvac.Client(url=vd.addr).auth.userpass.login("alice", "")
    with pytest.raises(hvac.exceptions.InvalidPath):
        hvac.Client(url=vd.addr).auth.userpass.login("al@ce", "x")
    creds = c.read("database/creds/reader")
    user = creds["data"]["username"]
    assert user.startswith("v-userpass-reader-")
    assert pg.login(user, creds["data"]["password"])[0]
    # a token's revocation revokes its leases
    c.auth.token.revoke_self()
    assert not pg.role_exists(user)
    with pytest.raises(hvac.exceptions.Forbidden):
        c.auth.token.lookup_self()
    st, js, _ = vd.api("PUT", "sys/leases/lookup", {"lease_id": creds["lease_id"]})
    assert st == 400 and js == {"errors": ["invalid lease"]}


def test_token_create_lookup_renew_revoke(vd, root):
    t = root.auth.token.create(policies=["broker"], ttl="10m", explicit_max_ttl="15m",
                               meta={"host": "db1"}, display_name="vlease broker")["auth"]
    assert t["policies"] == ["broker", "default"] and t["lease_duration"] == 600 and t["orphan"] is False
    assert re.fullmatch(r"hvs\.%s{24,}" % BASE62, t["client_token"]) and len(t["accessor"]) == 24
    c = hvac.Client(url=vd.addr, token=t["client_token"])
    me = c.auth.token.lookup_self()["data"]
    assert me["display_name"] == "token-vlease-broker" and me["meta"] == {"host": "db1"}
    assert me["explicit_max_ttl"] == 900 and me["creation_ttl"] == 600 and me["renewable"] is True
    assert me["path"] == "auth/token/create" and me["type"] == "service" and me["expire_time"]
    assert root.auth.token.lookup(t["client_token"])["data"]["accessor"] == t["accessor"]
    by_acc = root.auth.token.lookup_accessor(t["accessor"])["data"]
    assert by_acc["id"] == "" and by_acc["display_name"] == "token-vlease-broker"
    # renew-self: the increment is a new TTL from now, capped by explicit_max_ttl with Vault's warning
    r = c.auth.token.renew_self(increment=300)
    assert r["auth"]["lease_duration"] == 300 and r["auth"]["client_token"] == t["client_token"]
    r = c.auth.token.renew_self(increment="1h")
    assert 895 <= r["auth"]["lease_duration"] <= 900
    assert re.fullmatch(r'TTL of "1h" exceeded the effective max_ttl of "14m5\ds"; TTL value is capped accordingly',
                        r["warnings"][0]), r["warnings"]
    assert c.auth.token.lookup_self()["data"]["last_renewal_time"]
    r = root.auth.token.renew(t["client_token"], increment=60)
    assert r["auth"]["lease_duration"] == 60
    r = root.auth.token.renew_accessor(t["accessor"], increment=120)
    assert r["auth"]["lease_duration"] == 120
    # root cannot be renewed
    with pytest.raises(hvac.exceptions.InvalidRequest, match="lease is not renewable"):
        root.auth.token.renew_self()
    # child policies must be a subset
    with pytest.raises(hvac.exceptions.InvalidRequest, match="child policies must be subset of parent"):
        c.auth.token.create(policies=["admin"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="root or sudo privileges required"):
        c.auth.token.create(policies=["broker"], no_parent=True)
    root.auth.token.revoke_accessor(t["accessor"])
    with pytest.raises(hvac.exceptions.Forbidden):
        c.auth.token.lookup_self()
    t2 = root.auth.token.create(policies=["broker"], ttl="1h")["auth"]["client_token"]
    root.auth.token.revoke(t2)
    assert vd.api("GET", "auth/token/lookup-self", token=t2)[0] == 403
    # a non-renewable token
    t3 = root.auth.token.create(policies=["broker"], ttl="1h", renewable=False)["auth"]["client_token"]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="lease is not renewable"):
        hvac.Client(url=vd.addr, token=t3).auth.token.renew_self()


def test_token_tree_revocation_takes_leases(vd, pg, root):
    parent = root.auth.token.create(policies=["broker"], ttl="1h")["auth"]
    pc = hvac.Client(url=vd.addr, token=parent["client_token"])
    child = pc.auth.token.create(policies=["broker"], ttl="1h", display_name="child")["auth"]
    assert child["orphan"] is False
    cc = hvac.Client(url=vd.addr, token=child["client_token"])
    grandchild = cc.auth.token.create(policies=["broker"], ttl="1h")["auth"]
    gc = hvac.Client(url=vd.addr, token=grandchild["client_token"])
    c1 = cc.read("database/creds/reader")["data"]
    c2 = gc.read("database/creds/reader")["data"]
    c3 = pc.read("database/creds/reader")["data"]
    assert c1["username"].startswith("v-token-ch-reader-") or c1["username"].startswith("v-token-c")
    for c in (c1, c2, c3):
        assert pg.login(c["username"], c["password"])[0]
    # revoking the child takes its own lease and its child's, not the parent's
    root.auth.token.revoke(child["client_token"])   # the broker policy has no auth/token/revoke
    assert not pg.role_exists(c1["username"]) and not pg.role_exists(c2["username"])
    assert pg.login(c3["username"], c3["password"])[0]
    assert vd.api("GET", "auth/token/lookup-self", token=grandchild["client_token"])[0] == 403
    pc.auth.token.revoke_self()
    assert not pg.role_exists(c3["username"])


def test_error_cases(vd, approle, root):
    c = approle_client(vd, approle)
    # unknown role, not allowed role (500), POST to creds (405)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="unknown role: nosuch"):
        c.read("database/creds/nosuch")
    with pytest.raises(hvac.exceptions.Forbidden):   # policy has read only: ACL first
        c.write("database/creds/reader")
    with pytest.raises(hvac.exceptions.UnexpectedError, match="unsupported operation"):
        root.write("database/creds/reader")
    st, js, _ = vd.api("POST", "database/creds/reader", {})
    assert st == 405 and "unsupported operation" in js["errors"][0]
    # no mount at the path (root may reach it): 404 no handler; unprivileged: 403 before routing
    st, js, _ = vd.api("GET", "nothing/here")
    assert st == 404 and js == {"errors": ['no handler for route "nothing/here". route entry not found.']}
    with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
        c.read("nothing/here")
    st, js, _ = vd.api("GET", "nothing/here", token=c.token)
    assert js == {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}
    # unknown lease, missing lease id, not renewable (KV has no lease)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="lease not found"):
        c.sys.renew_lease("database/creds/reader/AAAAAAAAAAAAAAAAAAAAAAAA")
    st, js, _ = vd.api("PUT", "sys/leases/renew", {}, token=c.token)
    assert st == 400 and js["errors"] == ["lease_id must be specified"]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid lease"):
        c.sys.read_lease("database/creds/reader/nope")
    # bad token
    bad = hvac.Client(url=vd.addr, token="hvs.notarealtoken000000000")
    with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
        bad.read("database/creds/reader")
    assert not bad.is_authenticated()
    # missing KV paths: 404 with an empty errors list
    st, js, _ = vd.api("GET", "kv1/missing")
    assert st == 404 and js == {"errors": []}
    assert root.read("kv1/missing") is None
    # policy without sys/leases/revoke: default policy only
    d = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    st, js, _ = vd.api("PUT", "sys/leases/revoke", {"lease_id": "x"}, token=d)
    assert st == 403
    # revoke-prefix needs sudo
    st, js, _ = vd.api("PUT", "sys/leases/revoke-prefix/database/creds/reader", {}, token=c.token)
    assert st == 403
    # bad JSON, write to path ending in '/'
    st, js, _ = vd.api("PUT", "kv1/x/", {"a": 1})
    assert st == 400 and "cannot write to a path ending in '/'" in js["errors"][0]
    # "not an allowed role"
    root.secrets.database.configure(name="limited", plugin_name="postgresql-database-plugin",
                                    connection_url=vd.pg.admin_dsn, username="postgres",
                                    password=vd.pg.superuser_password, allowed_roles=["other"])
    root.secrets.database.create_role(name="limrole", db_name="limited",
                                      creation_statements=["CREATE ROLE \"{{name}}\";"])
    with pytest.raises(hvac.exceptions.InternalServerError, match='"limrole" is not an allowed role'):
        c.read("database/creds/limrole")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="error creating database object"):
        root.secrets.database.configure(name="broken", plugin_name="postgresql-database-plugin",
                                        connection_url=vd.pg.admin_dsn, username="postgres",
                                        password="wrong", allowed_roles=["*"])


def test_lease_renew_capping_and_past_max(vd, pg, root):
    vd.write_db_role("short", default_ttl="10s", max_ttl="20s")
    r = root.read("database/creds/short")
    assert r["lease_duration"] == 10
    ren = root.sys.renew_lease(r["lease_id"], increment=3600)
    assert 18 <= ren["lease_duration"] <= 20
    assert re.fullmatch(r'TTL of "1h" exceeded the effective max_ttl of "(19|20|18)s"; '
                        r'TTL value is capped accordingly', ren["warnings"][0]), ren["warnings"]
    vu = pg.valid_until(r["data"]["username"]).timestamp()
    assert abs(vu - (time.time() + ren["lease_duration"] + 5)) < 3
    # increment 0 uses the role's default_ttl
    assert root.sys.renew_lease(r["lease_id"])["lease_duration"] == 10
    root.sys.revoke_lease(r["lease_id"])


def test_lease_expiry_by_reaper(vd, pg, root):
    vd.write_db_role("brief", default_ttl="2s", max_ttl="1h")
    r = root.read("database/creds/brief")
    user, pw = r["data"]["username"], r["data"]["password"]
    assert r["lease_duration"] == 2 and pg.login(user, pw)[0]
    wait_for(lambda: not pg.role_exists(user), timeout=10, what="reaper to drop the role")
    assert not pg.login(user, pw)[0]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="lease not found"):
        root.sys.renew_lease(r["lease_id"])


def test_token_expiry_revokes_leases(vd, pg, root):
    t = root.auth.token.create(policies=["broker"], ttl="2s")["auth"]["client_token"]
    c = hvac.Client(url=vd.addr, token=t)
    r = c.read("database/creds/reader")
    user = r["data"]["username"]
    assert pg.role_exists(user)
    wait_for(lambda: not pg.role_exists(user), timeout=10, what="token expiry to revoke its lease")
    with pytest.raises(hvac.exceptions.Forbidden):
        c.auth.token.lookup_self()
    with pytest.raises(hvac.exceptions.InvalidRequest, match="lease not found"):
        root.sys.renew_lease(r["lease_id"])


def test_custom_revocation_and_renew_statements_and_revoke_prefix(vd, pg, root):
    vd.write_db_role("custom", default_ttl="1h", max_ttl="2h",
                     revocation=['REVOKE CONNECT ON DATABASE postgres FROM "{{name}}";',
                                 'DROP ROLE IF EXISTS "{{name}}";'],
                     renew=["ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}' CONNECTION LIMIT 3;"])
    role = root.secrets.database.read_role("custom")["data"]
    assert role["default_ttl"] == 3600 and role["max_ttl"] == 7200 and role["db_name"] == "pg"
    r1 = root.read("database/creds/custom")
    r2 = root.read("database/creds/custom")
    root.sys.renew_lease(r1["lease_id"], increment=60)
    assert pg.psql_admin("SELECT rolconnlimit FROM pg_roles WHERE rolname='%s'" % r1["data"]["username"]).strip() == "3"
    root.sys.revoke_prefix("database/creds/custom")
    assert not pg.role_exists(r1["data"]["username"]) and not pg.role_exists(r2["data"]["username"])
    assert 'DROP ROLE IF EXISTS "%s"' % r2["data"]["username"] in vd.sql()


def test_kv_v1_and_v2(vd, approle, root):
    root.secrets.kv.v1.create_or_update_secret("app/db", {"user": "u", "pw": "p"}, mount_point="kv1")
    r = root.secrets.kv.v1.read_secret("app/db", mount_point="kv1")
    assert r["data"] == {"user": "u", "pw": "p"} and r["lease_id"] == "" and r["lease_duration"] == 2764800
    assert r["renewable"] is False and r["mount_type"] == "kv"
    assert root.secrets.kv.v1.list_secrets("app", mount_point="kv1")["data"]["keys"] == ["db"]
    root.secrets.kv.v1.create_or_update_secret("app/short", {"ttl": "30m", "a": "b"}, mount_point="kv1")
    assert root.secrets.kv.v1.read_secret("app/short", mount_point="kv1")["lease_duration"] == 1800
    c = approle_client(vd, approle)
    assert c.secrets.kv.v1.read_secret("app/db", mount_point="kv1")["data"]["user"] == "u"
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v1.create_or_update_secret("app/db", {"x": "y"}, mount_point="kv1")
    root.secrets.kv.v1.delete_secret("app/short", mount_point="kv1")
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v1.read_secret("app/short", mount_point="kv1")

    # v2
    w = root.secrets.kv.v2.create_or_update_secret("svc/app", secret={"k": "v1"}, mount_point="kv2test")
    assert w["data"]["version"] == 1
    root.secrets.kv.v2.create_or_update_secret("svc/app", secret={"k": "v2"}, cas=1, mount_point="kv2test")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
        root.secrets.kv.v2.create_or_update_secret("svc/app", secret={"k": "v3"}, cas=1, mount_point="kv2test")
    r = root.secrets.kv.v2.read_secret_version("svc/app", mount_point="kv2test")
    assert r["data"]["data"] == {"k": "v2"} and r["data"]["metadata"]["version"] == 2
    assert r["data"]["metadata"]["deletion_time"] == "" and r["data"]["metadata"]["destroyed"] is False
    assert r["lease_duration"] == 0
    assert root.secrets.kv.v2.read_secret_version("svc/app", version=1, mount_point="kv2test")["data"]["data"] == {"k": "v1"}
    assert c.secrets.kv.v2.read_secret_version("svc/app", mount_point="kv2test")["data"]["data"] == {"k": "v2"}
    md = root.secrets.kv.v2.read_secret_metadata("svc/app", mount_point="kv2test")["data"]
    assert md["current_version"] == 2 and set(md["versions"]) == {"1", "2"}
    root.secrets.kv.v2.delete_latest_version_of_secret("svc/app", mount_point="kv2test")
    st, js, _ = vd.api("GET", "kv2test/data/svc/app")
    assert st == 404 and js["data"]["data"] is None and js["data"]["metadata"]["deletion_time"] != ""
    st, js, _ = vd.api("GET", "kv2test/svc/app")
    assert st == 404 and "Invalid path for a versioned K/V secrets engine" in js["warnings"][0]
    st, js, _ = vd.api("GET", "kv2test/data/nothing")
    assert st == 404 and js == {"errors": []}
    root.secrets.kv.v2.create_or_update_secret("denied/x", secret={"k": "v"}, mount_point="kv2test")
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v2.read_secret_version("denied/x", mount_point="kv2test")


def test_policies_hcl_json_and_legacy_path(vd, root):
    root.sys.create_or_update_policy("jsonpol", {"path": {"kv1/team/+/cfg": {"capabilities": ["read"]}}})
    assert "jsonpol" in root.sys.list_policies()["data"]["policies"]
    assert "kv1/team/+/cfg" in root.sys.read_policy("jsonpol")["data"]["rules"]
    root.sys.create_or_update_policy("hclpol", 'path "kv1/open/*" {\n  capabilities = ["read", "list"]\n}\n')
    st, js, _ = vd.api("GET", "sys/policies/acl/hclpol")
    assert st == 200 and js["data"]["name"] == "hclpol" and 'kv1/open/*' in js["data"]["policy"]
    root.write("kv1/team/a/cfg", x="1")
    root.write("kv1/team/a/other", x="2")
    root.write("kv1/open/deep/path", x="3")
    t = root.auth.token.create(policies=["jsonpol", "hclpol"], ttl="5m")["auth"]["client_token"]
    c = hvac.Client(url=vd.addr, token=t)
    assert c.read("kv1/team/a/cfg")["data"] == {"x": "1"}
    assert c.read("kv1/open/deep/path")["data"] == {"x": "3"}
    with pytest.raises(hvac.exceptions.Forbidden):
        c.read("kv1/team/a/other")
    with pytest.raises(hvac.exceptions.Forbidden):
        c.read("kv1/team/a/b/cfg")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="failed to parse policy"):
        root.sys.create_or_update_policy("broken", 'path "x" { capabilities = ["fly"] }')
    root.sys.delete_policy("jsonpol")
    with pytest.raises(hvac.exceptions.Forbidden):
        c.read("kv1/team/a/cfg")
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert mounts["database/"]["type"] == "database" and mounts["kv1/"]["options"] == {"version": "1"}
    assert "approle/" in root.sys.list_auth_methods()["data"]
    st, js, _ = vd.api("GET", "sys/mounts/nosuchmount")
    assert st == 400 and js == {"errors": ["No secret engine mount at nosuchmount/"]}
    with pytest.raises(hvac.exceptions.InvalidRequest, match="path is already in use"):
        root.sys.enable_secrets_engine("kv", path="kv1")


def test_fault_switches(vd, root):
    c = hvac.Client(url=vd.addr, token=vd.root_token)
    # sealed: 503 everywhere but health (which reports it), control still served
    vd.faults(sealed=True)
    with pytest.raises(hvac.exceptions.VaultDown, match="Vault is sealed"):
        c.auth.token.lookup_self()
    st, js, _ = vd.api("GET", "sys/health", token="")
    assert st == 503 and js["sealed"] is True and "cluster_id" not in js
    assert vd.fault_state()["sealed"] is True
    vd.faults(sealed=False)
    assert c.auth.token.lookup_self()["data"]["id"] == vd.root_token
    # the next N requests answered like a proxy would
    vd.faults(fail_next={"count": 2, "status": 502, "body": "<html><body>Bad Gateway</body></html>",
                         "content_type": "text/html"})
    for _ in range(2):
        with pytest.raises(hvac.exceptions.BadGateway, match="Bad Gateway"):
            c.auth.token.lookup_self()
    assert c.auth.token.lookup_self()["data"]["id"] == vd.root_token
    # 429 with Retry-After
    vd.faults(ratelimit_next={"count": 1, "retry_after": 7})
    st, js, hdrs = vd.api("GET", "auth/token/lookup-self")
    assert st == 429 and hdrs["Retry-After"] == "7"
    assert js == {"errors": ['request path "auth/token/lookup-self": rate limit quota exceeded']}
    # connections dropped with no reply
    vd.faults(drop_next=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        c.auth.token.lookup_self()
    assert c.auth.token.lookup_self()["data"]["id"] == vd.root_token
    # X-Vault-Request required
    vd.faults(require_request_header=True)
    st, js, _ = vd.api("GET", "auth/token/lookup-self", headers={"X-Vault-Request": ""})
    assert st == 412 and js == {"errors": ['missing "X-Vault-Request" header']}
    assert vd.api("GET", "auth/token/lookup-self")[0] == 200
    # latency
    vd.faults(require_request_header=False, latency_ms=300)
    t0 = time.monotonic()
    c.auth.token.lookup_self()
    assert time.monotonic() - t0 >= 0.3
    vd.reset_faults()
    assert vd.fault_state()["latency_ms"] == 0
    # only root may use the control API
    t = root.auth.token.create(policies=["broker"], ttl="5m")["auth"]["client_token"]
    assert vd.api("POST", "sys/vaultdev/faults", {"sealed": True}, token=t)[0] == 403
    assert vd.fault_state()["sealed"] is False
    log = vd.requests()
    assert all(not r["path"].startswith("sys/vaultdev") for r in log)
    assert any(r["status"] == 0 for r in log)   # the dropped one
    vd.clear_requests()
    assert vd.requests() == []


def test_log_has_no_secrets(vd):
    text = vd.log()
    assert vd.root_token not in text and vd.pg.superuser_password not in text
    assert re.search(r"GET database/creds/reader 200 approle \d+\.\dms", text)


def test_tls_mode(pg, tls_certs):
    v = VaultDev(pg=pg, tls_cert=tls_certs["cert"], tls_key=tls_certs["key"], ca_file=tls_certs["ca"]).start()
    try:
        assert v.addr.startswith("https://127.0.0.1:")
        c = hvac.Client(url=v.addr, token=v.root_token, verify=tls_certs["ca"])
        assert c.auth.token.lookup_self()["data"]["display_name"] == "root"
        v.setup_database(pg, role="tlsrole")
        r = c.read("database/creds/tlsrole")
        assert pg.login(r["data"]["username"], r["data"]["password"])[0]
        with pytest.raises(requests.exceptions.SSLError):
            hvac.Client(url=v.addr, token=v.root_token, verify=True).auth.token.lookup_self()
    finally:
        v.stop()
    # leases are not revoked on shutdown (like a dev Vault going away); clean up
    u = r["data"]["username"]
    pg.psql_admin('REVOKE CONNECT ON DATABASE postgres FROM "%s"; DROP ROLE IF EXISTS "%s"' % (u, u))


def test_async_revoke_reaped_and_lease_listing(vd, pg, root):
    r = root.read("database/creds/reader")
    user = r["data"]["username"]
    lst = root.sys.list_leases("database/creds/reader")["data"]["keys"]
    assert r["lease_id"].rsplit("/", 1)[1] in lst
    st, js, _ = vd.api("PUT", "sys/leases/revoke", {"lease_id": r["lease_id"], "sync": False})
    assert st == 202 and js is None
    wait_for(lambda: not pg.role_exists(user), timeout=5, what="async revocation")
    st, js, _ = vd.api("PUT", "sys/leases/revoke/" + r["lease_id"], {})
    assert st == 204


def test_db_connection_lost_is_reopened(vd, pg, root):
    pg.psql_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE usename = 'postgres' AND pid <> pg_backend_pid() AND client_addr IS NOT NULL")
    r = root.read("database/creds/reader")
    assert pg.login(r["data"]["username"], r["data"]["password"])[0]
    root.sys.revoke_lease(r["lease_id"])
    assert not pg.role_exists(r["data"]["username"])


def test_log_file_and_sigterm(tmp_path):
    lf = tmp_path / "vd.log"
    v = VaultDev(root_token="hvs.justforthis", extra_args=["--log-file", str(lf)]).start()
    v.api("GET", "auth/token/lookup-self")
    v.stop()   # asserts exit status 0
    text = lf.read_text()
    assert "GET auth/token/lookup-self 200 root" in text and "hvs.justforthis" not in text
