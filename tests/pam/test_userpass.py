"""auth: pam_vlease sends the password to the broker (Login), which logs in at [vault] user_auth_mount
and fetches identity = user credentials with the user's own Vault token."""
import time

from broker import wait_for
from pamhelpers import PAM_MODULE, PamDriver, service_dir

PAM_SUCCESS, PAM_AUTH_ERR, PAM_AUTHINFO_UNAVAIL, PAM_USER_UNKNOWN = 0, 7, 9, 10
PASSWORD = "correct horse vlpalice"

PERSONAL = """
[credential db-personal]
path = database/creds/personal
allow_users = vlpalice vlpbob
identity = user
"""


def confdir(b, auth_args=""):
    return service_dir({
        "vlease-login": f"auth required {PAM_MODULE} socket={b.socket} timeout=5 {auth_args}\n"
                        f"account required pam_permit.so\n"
                        f"session optional {PAM_MODULE} socket={b.socket} timeout=5\n",
    })


def setup_vault(vaultdev):
    vaultdev.write_db_role("personal", default_ttl="1h", max_ttl="24h")
    vaultdev.write_policy("personal", 'path "database/creds/personal" { capabilities = ["read"] }\n'
                                      'path "auth/token/renew-self" { capabilities = ["update"] }\n')
    vaultdev.setup_userpass("vlpalice", PASSWORD, policies=["personal"], token_ttl="1h", token_max_ttl="24h")


def test_userpass_login_fetches_with_the_users_token(make_broker, vaultdev, pg, users):
    setup_vault(vaultdev)
    b = make_broker(credentials=PERSONAL)

    # no login yet (a public-key ssh login): Get answers LoginRequired, the client exits 7
    r = b.vlease("vlpalice", "get", "db-personal")
    assert r.returncode == 7, (r.returncode, r.stderr)

    d = PamDriver(confdir(b), "vlease-login", "vlpalice")
    assert d.cmd(f"password {PASSWORD}") == "ok"
    vaultdev.clear_requests()
    assert d.rc("auth") == PAM_SUCCESS
    logins = vaultdev.requests("auth/userpass/login/")
    assert len(logins) == 1 and logins[0]["status"] == 200
    assert d.rc("open") == PAM_SUCCESS

    rc, cred, err = b.get("vlpalice", "db-personal")
    assert rc == 0, err
    reads = vaultdev.requests("database/creds/personal")
    assert len(reads) == 1
    # the token that read the credential belongs to alice's userpass login, not to the broker
    assert reads[0]["display_name"] == "userpass-vlpalice", reads[0]
    assert "personal" in reads[0]["policies"]
    assert pg.login(cred["data"]["username"], cred["data"]["password"])[0]

    # the broker's own credentials are unaffected, bob still has no login
    assert b.vlease("vlpbob", "get", "db-personal").returncode == 7

    accessor = reads[0]["accessor"]
    assert vaultdev.api("POST", "auth/token/lookup-accessor", {"accessor": accessor})[0] == 200
    assert d.rc("close") == PAM_SUCCESS
    d.end()
    wait_for(lambda: not pg.role_exists(cred["data"]["username"]), 15, what="the role to be revoked")
    # her token went with her last session: the broker forgot it, and Vault revoked it (revoke-self)
    assert b.vlease("vlpalice", "get", "db-personal").returncode == 7
    wait_for(lambda: [r for r in vaultdev.requests("auth/token/revoke-self")
                      if r["accessor"] == accessor and r["status"] == 204], 10, what="revoke-self of her token")
    st, body, _ = vaultdev.api("POST", "auth/token/lookup-accessor", {"accessor": accessor})
    assert st == 400, (st, body)
    assert "Revoking the Vault token of vlpalice: no session left." in b.log()
    assert PASSWORD not in b.log()


def test_wrong_password_refused_and_logged_without_it(make_broker, vaultdev, users):
    setup_vault(vaultdev)
    b = make_broker(credentials=PERSONAL)
    d = PamDriver(confdir(b), "vlease-login", "vlpalice")
    wrong = "Wr0ng-Passw0rd-xyzzy"
    assert d.cmd(f"password {wrong}") == "ok"
    assert d.rc("auth") == PAM_AUTH_ERR
    d.end()
    wait_for(lambda: "Vault login of vlpalice at auth/userpass failed" in b.log(), 5, what="the log line")
    assert wrong not in b.log()
    assert b.vlease("vlpalice", "get", "db-personal").returncode == 7


def test_auth_return_codes(make_broker, vaultdev, users, tmp_path):
    setup_vault(vaultdev)
    b = make_broker(credentials=PERSONAL)
    # no such local user
    d = PamDriver(confdir(b), "vlease-login", "vlp-nosuchuser")
    assert d.cmd("password whatever") == "ok"
    assert d.rc("auth") == PAM_USER_UNKNOWN
    d.end()
    # Vault unavailable (sealed)
    vaultdev.faults(sealed=True)
    d = PamDriver(confdir(b), "vlease-login", "vlpalice")
    assert d.cmd(f"password {PASSWORD}") == "ok"
    assert d.rc("auth") == PAM_AUTHINFO_UNAVAIL
    d.end()
    vaultdev.reset_faults()
    # broker unreachable
    cd = service_dir({"x": f"auth required {PAM_MODULE} socket={tmp_path}/none timeout=1\n"})
    d = PamDriver(cd, "x", "vlpalice")
    assert d.cmd(f"password {PASSWORD}") == "ok"
    t0 = time.monotonic()
    assert d.rc("auth") == PAM_AUTHINFO_UNAVAIL
    assert time.monotonic() - t0 < 1.5
    d.end()


def test_user_auth_mount_ldap_shape(make_broker, vaultdev, pg, users):
    """Any method with the userpass login shape works: here a second userpass mount named corp."""
    vaultdev.write_db_role("personal", default_ttl="1h", max_ttl="24h")
    vaultdev.write_policy("personal", 'path "database/creds/personal" { capabilities = ["read"] }\n')
    vaultdev.setup_userpass("vlpalice", "corp-pw", policies=["personal"], mount="corp")
    b = make_broker(credentials=PERSONAL, vault_extra="user_auth_mount = corp")
    d = PamDriver(confdir(b), "vlease-login", "vlpalice")
    assert d.cmd("password corp-pw") == "ok"
    assert d.rc("auth") == PAM_SUCCESS
    assert d.rc("open") == PAM_SUCCESS
    vaultdev.clear_requests()
    rc, cred, err = b.get("vlpalice", "db-personal")
    assert rc == 0, err
    assert vaultdev.requests("database/creds/personal")[0]["display_name"] == "corp-vlpalice"
    assert d.rc("close") == PAM_SUCCESS
    d.end()


def test_users_token_is_renewed_and_keeps_serving(make_broker, vaultdev, pg, users):
    """The user's token (ttl 4 s) is renewed with renew-self while the session lasts; the identity =
    user credential keeps coming from it."""
    vaultdev.write_db_role("personal", default_ttl="1h", max_ttl="24h")
    vaultdev.write_policy("personal", 'path "database/creds/personal" { capabilities = ["read"] }\n')
    vaultdev.setup_userpass("vlpalice", PASSWORD, policies=["personal"], token_ttl="4s", token_max_ttl="1h")
    b = make_broker(credentials=PERSONAL)
    d = PamDriver(confdir(b), "vlease-login", "vlpalice")
    assert d.cmd(f"password {PASSWORD}") == "ok"
    vaultdev.clear_requests()
    assert d.rc("auth") == PAM_SUCCESS
    assert d.rc("open") == PAM_SUCCESS
    wait_for(lambda: len([r for r in vaultdev.requests("auth/token/renew-self")
                          if r["display_name"] == "userpass-vlpalice" and r["status"] == 200]) >= 2,
             15, what="two renewals of alice's token")
    rc, cred, err = b.get("vlpalice", "db-personal")
    assert rc == 0, err
    assert vaultdev.requests("database/creds/personal")[-1]["display_name"] == "userpass-vlpalice"
    assert pg.login(cred["data"]["username"], cred["data"]["password"])[0]
    assert d.rc("close") == PAM_SUCCESS
    d.end()


def test_logout_keeps_the_users_token_while_a_kept_lease_needs_it(make_broker, vaultdev, pg, users):
    """release_on_logout = no: revoking her token at logout would take the lease it created (Vault
    revokes a token's leases with it), so the token is forgotten, not revoked, and the credential
    keeps working after the session ends."""
    setup_vault(vaultdev)
    b = make_broker(credentials=PERSONAL + "release_on_logout = no\n")
    d = PamDriver(confdir(b), "vlease-login", "vlpalice")
    assert d.cmd(f"password {PASSWORD}") == "ok"
    assert d.rc("auth") == PAM_SUCCESS
    assert d.rc("open") == PAM_SUCCESS
    rc, cred, err = b.get("vlpalice", "db-personal")
    assert rc == 0, err
    vaultdev.clear_requests()
    assert d.rc("close") == PAM_SUCCESS
    d.end()
    wait_for(lambda: "Forgetting the Vault token of vlpalice: no session left" in b.log(), 10,
             what="the token to be forgotten")
    assert not vaultdev.requests("auth/token/revoke-self")
    ok, msg = pg.login(cred["data"]["username"], cred["data"]["password"])
    assert ok, msg
