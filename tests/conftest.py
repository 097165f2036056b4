"""Shared pytest fixtures: a private PostgreSQL cluster, a vaultdev wired to it, throwaway TLS certs."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from pgcluster import PgCluster  # noqa: E402
from vaultdev import VaultDev  # noqa: E402


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: PostgreSQL's initdb runs as OS user postgres via runuser")


@pytest.fixture(scope="session")
def pg():
    """A session-wide PgCluster (superuser over its socket, scram-sha-256 over TCP)."""
    _need_root()
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def vaultdev(pg):
    """A session-wide VaultDev with database/ mounted, config `pg` and role `reader` (1h / 24h)."""
    vd = VaultDev(pg=pg).start()
    vd.setup_database(pg, role="reader", default_ttl="1h", max_ttl="24h")
    yield vd
    vd.stop()


@pytest.fixture(scope="session")
def approle(vaultdev):
    """The broker's Vault identity: the shipped policy (packaging/vault) and an AppRole role using it.
    Returns (role_id, secret_id)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packaging", "vault",
                           "vleased-policy.hcl")) as f:
        vaultdev.write_policy("vleased", f.read())
    return vaultdev.setup_approle("vleased", policies=["vleased"], token_ttl=3600, token_max_ttl=86400)


def make_tls_certs(directory):
    """A throwaway CA and a server cert for 127.0.0.1/localhost, made with the openssl CLI.
    Returns dict(ca=..., cert=..., key=...) of file paths."""
    p = lambda n: os.path.join(directory, n)  # noqa: E731

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"),
        "-days", "2", "-subj", "/CN=vlease test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("server.key"), "-out", p("server.csr"),
        "-subj", "/CN=localhost")
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial",
        "-out", p("server.pem"), "-days", "2", "-extfile", p("ext.cnf"))
    return {"ca": p("ca.pem"), "cert": p("server.pem"), "key": p("server.key")}


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """Paths of a throwaway CA (`ca`) and server cert/key (`cert`, `key`) for 127.0.0.1 and localhost."""
    return make_tls_certs(str(tmp_path_factory.mktemp("tls")))
