"""Paths and helpers of the system suite (the fixtures are in conftest.py)."""
import json
import os
import subprocess

import pytest

from systemd_ns import SRC, HostSnapshot, SystemdContainer  # noqa: F401 (SRC re-exported)

BUILD = os.path.join(SRC, "build", "plain")
DESTDIR_PARENT = os.path.join(SRC, "build")       # each session installs into its own plain-dest-XXXX
UNITS = ("vleased.service", "vleased.socket", "vleased-credentials.socket")
POLICY = os.path.join(SRC, "packaging", "vault", "vleased-policy.hcl")
TEST_LIB = "/opt/vlease-tests"      # tests/lib inside the container
USERS = {"vltalice": 1000, "vltbob": 1001}


def _run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        pytest.fail("%s failed (%d):\n%s%s" % (" ".join(argv), r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return r


def broker_config(vault_addr, pg_port=0):
    return f"""; vleased.conf of the system tests (the shipped unit reads /etc/vlease/vleased.conf)
[vault]
address = {vault_addr}
auth = approle
; role_id and secret_id come from $CREDENTIALS_DIRECTORY (LoadCredential= in vleased.service)

[credential db-reader]
path = database/creds/reader
allow_users = vltalice

; LoadCredential= (test_40): the format is a libpq connection string
[credential db-app]
path = database/creds/reader
allow_units = vltapp.service
format = host=127.0.0.1 port={pg_port} dbname=postgres user={{{{username}}}} password={{{{password}}}}

[credential db-short]
path = database/creds/sysshort
allow_units = vltshort.service
format = host=127.0.0.1 port={pg_port} dbname=postgres user={{{{username}}}} password={{{{password}}}}

; restart and idle exit (test_50): short TTL, long max TTL, so renewals show
[credential db-renew]
path = database/creds/sysrenew
allow_units = vltrenew.service
allow_users = vltalice
format = host=127.0.0.1 port={pg_port} dbname=postgres user={{{{username}}}} password={{{{password}}}}
"""


class System:
    """The session's container plus the host snapshot taken before it booted."""

    def __init__(self, destdir, vaultdev, pg):
        self.destdir, self.vaultdev, self.pg = destdir, vaultdev, pg
        self.snapshot = None
        self.container = None

    def broker_roles(self):
        """PostgreSQL roles made by Vault's database engine (v-...) now."""
        return set(self.pg.psql_admin("SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%'").split())

    def start(self):
        # the PostgreSQL cluster may be shared with other suites of the same session: what was there
        # before the container booted is not the system suite's
        self.roles_before = self.broker_roles()
        self.snapshot = HostSnapshot(self.destdir)
        with open(POLICY) as f:
            self.vaultdev.write_policy("vleased", f.read())
        role_id, secret_id = self.vaultdev.setup_approle("vleased-system", policies=["vleased"],
                                                         token_ttl=3600, token_max_ttl=86400)
        self.container = SystemdContainer(
            self.destdir,
            units=[os.path.join(self.destdir, "lib", "systemd", "system", u) for u in UNITS],
            files={
                "/etc/vlease/vleased.conf": (broker_config(self.vaultdev.addr, self.pg.port), 0o644),
                "/etc/vlease/role_id": (role_id + "\n", 0o600),
                "/etc/vlease/secret_id": (secret_id + "\n", 0o600),
            },
            # The shipped units are used as installed; a test may only add drop-ins. This one changes
            # nothing (systemd ignores X- keys) and shows the drop-in path works.
            dropins={"vleased.service": {"50-system-test.conf": "[Unit]\nX-Vlease-Test=system suite\n"}},
            binds=[(os.path.join(SRC, "tests", "lib"), TEST_LIB)])
        self.container.boot()
        c = self.container
        c.sysusers(*[f'u {name} {uid} "vlease test user" /nonexistent /usr/sbin/nologin'
                     for name, uid in USERS.items()])
        return self

    def shutdown(self):
        if self.container is not None:
            c, self.container = self.container, None
            self.cgroup, self.scratch = c.cgroup, c.scratch
            c.poweroff()
            self.timings, self.exit_status = c.timings, c.exit_status

    def varlink(self, user, method, params=None, socket="/run/vlease/io.vlease.Broker", timeout=60):
        """One varlink call inside the container as `user`; returns the reply object."""
        argv = ["/usr/bin/python3", TEST_LIB + "/varlink.py", socket, method]
        if params is not None:
            argv.append(json.dumps(params))
        r = self.container.run(argv, user=user, timeout=timeout)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


