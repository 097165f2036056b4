"""KV v1/v2 through the broker, and TLS to Vault with a CA file (and a wrong one)."""
import subprocess

import pytest

from vaultdev import VaultDev


def ensure_mount(v, path, version):
    v.mount(path, "kv", {"version": version})


KV = """
[credential app-kv1]
path = secret/app
allow_users = vlalice

[credential app-kv2]
path = kv/data/app
allow_users = vlalice
format = key={{api_key}}
"""


def test_kv_v1_and_v2(make_broker, vaultdev):
    ensure_mount(vaultdev, "secret", "1")
    ensure_mount(vaultdev, "kv", "2")
    assert vaultdev.api("POST", "secret/app", {"api_key": "v1-key", "region": "eu"})[0] in (200, 204)
    assert vaultdev.api("POST", "kv/data/app", {"data": {"api_key": "v2-key"}})[0] == 200

    b = make_broker(credentials=KV)
    rc, c1, err = b.get("vlalice", "app-kv1")
    assert rc == 0, err
    assert c1["data"] == {"api_key": "v1-key", "region": "eu"}
    assert c1.get("lease") is None              # KV has no lease

    rc, c2, err = b.get("vlalice", "app-kv2")
    assert rc == 0, err
    assert c2["data"] == {"api_key": "v2-key"}     # unwrapped from data.data
    assert c2["formatted"] == "key=v2-key"
    r = b.vlease("vlalice", "get", "app-kv2", "--field", "api_key")
    assert r.stdout.strip() == "v2-key"
    r = b.vlease("vlalice", "get", "app-kv1")
    assert r.returncode == 0 and "api_key: v1-key" in r.stdout

    held = b.call("vlalice", "io.vlease.Broker.List")["parameters"]["held"]
    kv = [h for h in held if h["credential"] == "app-kv1"]
    assert kv and kv[0].get("expires_usec") is None


def make_ca(tmp_path, name):
    key, crt = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    return str(crt)


@pytest.fixture(scope="module")
def tls_vault(pg, tls_certs):
    v = VaultDev(pg=pg, tls_cert=tls_certs["cert"], tls_key=tls_certs["key"], ca=tls_certs["ca"])
    v.start()
    v.setup_database(pg)
    yield v
    v.stop()


def test_https_with_ca_file(make_broker, tls_vault, tls_certs, pg, tmp_path):
    assert tls_vault.addr.startswith("https://")
    with open(__import__("broker").POLICY) as f:
        tls_vault.write_policy("vleased", f.read())
    role = tls_vault.setup_approle("vleased", policies=["vleased"], token_ttl=3600, token_max_ttl=86400)

    b = make_broker(vault=tls_vault, role=role, vault_extra=f"ca_file = {tls_certs['ca']}")
    rc, cred, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    ok, msg = pg.login(cred["data"]["username"], cred["data"]["password"])
    assert ok, msg

    wrong = make_ca(tmp_path, "wrong-ca")
    b2 = make_broker(vault=tls_vault, role=role, vault_extra=f"ca_file = {wrong}")
    tls_vault.clear_requests()
    r = b2.vlease("vlalice", "get", "db-reader")
    assert r.returncode == 5, (r.returncode, r.stderr)
    assert "certificate" in r.stderr.lower() or "tls" in r.stderr.lower(), r.stderr
    assert "certificate" in b2.log().lower()
    assert tls_vault.requests("database/creds/") == []


def test_plain_http_refused_to_non_loopback(make_broker):
    from broker import VLEASED
    b = make_broker(start=False)
    base = b.config
    # A name that merely starts like a loopback address resolves wherever its owner wants.
    for host in ("192.0.2.1", "127.0.0.1.example.com", "127.evil.example"):
        b.config = base.replace("http://127.0.0.1", f"http://{host}", 1)
        b.write_config()
        r = subprocess.run([VLEASED, "--config", b.config_path, "--check-config"], capture_output=True, text=True)
        assert r.returncode != 0, host
        assert "allow_http" in r.stderr
    b.config = base.replace("http://127.0.0.1", "http://localhost", 1)
    b.write_config()
    r = subprocess.run([VLEASED, "--config", b.config_path, "--check-config"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_plain_view_escapes_control_characters(make_broker, vaultdev):
    """One line per field: a value cannot pass for another field or drive the terminal."""
    ensure_mount(vaultdev, "secret", "1")
    assert vaultdev.api("POST", "secret/odd", {"a": "x\nb: forged", "esc": "\x1b[31mred"})[0] in (200, 204)
    b = make_broker(credentials="\n[credential odd]\npath = secret/odd\nallow_users = vlalice\n")
    r = b.vlease("vlalice", "get", "odd")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["a: x\\nb: forged", "esc: \\x1b[31mred"]
    r = b.vlease("vlalice", "get", "odd", "--field", "a")
    assert r.stdout == "x\nb: forged\n"
    r = b.vlease("vlalice", "list")
    assert "(vlalice)" in r.stdout
