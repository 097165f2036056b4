"""The lease lifecycle against vaultdev and PostgreSQL: renewal, replacement before max TTL,
coalesced first requests, Vault outages, a token revoked behind the broker's back."""
import subprocess
import time

import pytest

from broker import VLEASE, wait_for
from localusers import as_user


def short_role(vaultdev, name, default_ttl, max_ttl):
    """A database role like `reader` but with its own TTLs."""
    vaultdev.write_db_role(name, default_ttl=default_ttl, max_ttl=max_ttl)


def cred_section(name, path, users="vlalice"):
    return f"\n[credential {name}]\npath = {path}\nallow_users = {users}\n"


def test_renewal_and_replacement_before_max_ttl(make_broker, vaultdev, pg):
    short_role(vaultdev, "short", "4s", "12s")
    b = make_broker(credentials=cred_section("db-short", "database/creds/short"))
    vaultdev.clear_requests()
    first_seen = {}          # username -> (first time seen, issued time, expires)
    valid_untils = {}
    t0 = time.monotonic()
    tick = 0
    while time.monotonic() - t0 < 20:
        rc, c, err = b.get("vlalice", "db-short")
        assert rc == 0, err
        user, pw = c["data"]["username"], c["data"]["password"]
        left = c["lease"]["expires_usec"] / 1e6 - time.time()
        assert left >= 0.9, f"handed out a credential with only {left:.2f}s left"
        ok, msg = pg.login(user, pw)
        assert ok, f"credential {user} handed out at t={time.monotonic() - t0:.1f}s does not log in: {msg}"
        first_seen.setdefault(user, (time.time(), c["lease"]["issued_usec"] / 1e6))
        valid_untils.setdefault(user, set()).add(pg.valid_until(user))
        tick += 1
        delay = t0 + tick * 0.5 - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    users = sorted(first_seen, key=lambda u: first_seen[u][0])
    assert len(users) >= 2, "no replacement arrived in 20 s although max_ttl is 12 s"
    for prev, nxt in zip(users, users[1:]):
        issued_prev = first_seen[prev][1]
        assert first_seen[nxt][0] < issued_prev + 12, "replacement arrived after the old lease's max TTL"
    assert any(len(v) > 1 for v in valid_untils.values()), "renewals never moved rolvaliduntil"
    creds = vaultdev.requests("database/creds/")
    renews = vaultdev.requests("sys/leases/renew")
    assert len(creds) <= 3, f"{len(creds)} database/creds reads in 20 s"
    assert 1 <= len(renews) <= 12, f"{len(renews)} renewals in 20 s"


def test_concurrent_first_gets_make_one_vault_read(make_broker, vaultdev):
    b = make_broker(credentials=cred_section("db-burst", "database/creds/reader"))
    vaultdev.clear_requests()
    vaultdev.faults(latency_ms=300)
    procs = [subprocess.Popen(as_user("vlalice", [VLEASE, "--socket", b.socket, "get", "db-burst",
                                                  "--field", "username"]),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(50)]
    outs = [p.communicate(timeout=60) for p in procs]
    vaultdev.reset_faults()
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs if o[1]][:3]
    assert len({o[0].strip() for o in outs}) == 1
    assert len(vaultdev.requests("database/creds/")) == 1


@pytest.mark.parametrize("outage", ["sealed", "html502"])
def test_outage_serves_cache_then_vault_unavailable_then_recovers(make_broker, vaultdev, pg, outage):
    short_role(vaultdev, "outage", "6s", "60s")
    b = make_broker(credentials=cred_section("db-outage", "database/creds/outage"))
    rc, c, err = b.get("vlalice", "db-outage")
    assert rc == 0, err
    expires = c["lease"]["expires_usec"] / 1e6
    vaultdev.clear_requests()
    if outage == "sealed":
        vaultdev.faults(sealed=True)
    else:
        vaultdev.faults(fail_next={"count": 100000, "status": 502, "content_type": "text/html",
                                   "body": "<html><body><h1>502 Bad Gateway</h1></body></html>"})
    t0 = time.monotonic()
    unavailable = None
    while time.monotonic() - t0 < 20:
        r = b.vlease("vlalice", "get", "db-outage", "--json")
        if time.time() < expires - 1.2:
            assert r.returncode == 0, r.stderr
        if r.returncode == 0:
            import json
            got = json.loads(r.stdout)
            assert got["data"] == c["data"], "a new credential while Vault is down?"
            assert got["lease"]["expires_usec"] / 1e6 - time.time() >= 0.9
        else:
            assert r.returncode == 5, (r.returncode, r.stderr)
            unavailable = r.stderr
        time.sleep(0.5)
    assert unavailable is not None, "never answered VaultUnavailable after the lease ended"
    assert "unavailable" in unavailable.lower()
    sent = vaultdev.requests()
    assert len(sent) <= 10, f"broker sent {len(sent)} requests to a {outage} Vault in 20 s"

    vaultdev.reset_faults()
    def works():
        rc, cred, _ = b.get("vlalice", "db-outage")
        return rc == 0 and pg.login(cred["data"]["username"], cred["data"]["password"])[0]
    wait_for(works, 60, interval=0.5, what="service to resume after the outage")


def test_token_revoked_behind_the_brokers_back(make_broker, vaultdev, pg):
    short_role(vaultdev, "revtok", "5s", "1h")
    b = make_broker(credentials=cred_section("db-revtok", "database/creds/revtok"))
    vaultdev.clear_requests()
    rc, c, err = b.get("vlalice", "db-revtok")
    assert rc == 0, err
    accessor = vaultdev.requests("database/creds/")[0]["accessor"]
    logins_before = len(vaultdev.requests("auth/approle/login"))
    status, body, _ = vaultdev.api("POST", "auth/token/revoke-accessor", {"accessor": accessor})
    assert status == 204, body
    wait_for(lambda: not pg.role_exists(c["data"]["username"]), 10, what="vaultdev to revoke the lease")

    def reissued():
        rc, cred, _ = b.get("vlalice", "db-revtok")
        return (rc == 0 and cred["data"]["username"] != c["data"]["username"]
                and pg.login(cred["data"]["username"], cred["data"]["password"])[0])
    wait_for(reissued, 30, interval=0.5, what="a re-issued credential after the token was revoked")
    assert len(vaultdev.requests("auth/approle/login")) > logins_before


def test_a_first_get_waits_for_a_slow_login_and_read(make_broker, vaultdev, pg):
    """Vault answering each call after 17 s: the broker's login and the read take 34 s, longer than
    one timeout_sec's worth; vlease waits for the broker's answer rather than calling it unreachable."""
    vaultdev.faults(latency_ms=17000)
    try:
        b = make_broker()
        t0 = time.monotonic()
        rc, c, err = b.get("vlalice", "db-reader")
        waited = time.monotonic() - t0
    finally:
        vaultdev.reset_faults()
    assert rc == 0, (rc, err)
    assert waited > 30, f"answered in {waited:.1f}s: the slow login was not on the path"
    ok, msg = pg.login(c["data"]["username"], c["data"]["password"])
    assert ok, msg
