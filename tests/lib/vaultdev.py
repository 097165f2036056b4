"""Start and drive tests/vaultdev (the Vault-compatible stand-in) from pytest.

    vd = VaultDev(pg=pg).start()
    vd.setup_database(pg, role="reader", default_ttl="1h", max_ttl="24h")
    role_id, secret_id = vd.setup_approle("broker", policies=["broker"])
    status, body, headers = vd.api("GET", "database/creds/reader")
    vd.faults(sealed=True); vd.reset_faults()
    vd.requests(path_prefix="database/creds/")
    vd.stop()   # SIGTERM, asserts exit status 0
"""
import json
import os
import secrets
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
VAULTDEV = os.path.join(os.path.dirname(HERE), "vaultdev", "vaultdev")
PYTHON = "/usr/bin/python3"

DEFAULT_CREATION = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    "GRANT CONNECT ON DATABASE postgres TO \"{{name}}\";",
]


class VaultDevError(Exception):
    pass


class VaultDev:
    """One vaultdev process. `addr`, `root_token`, `log_path` are set once started.

    pg: the PgCluster setup_database() uses by default. tls_cert/tls_key: serve https; ca_file (alias ca):
    the CA that api() verifies the server with. extra_args: more vaultdev arguments (e.g. --log-file F).
    Only sys/, auth/token/ and cubbyhole/ are mounted at start; mount KV engines with mount()."""

    def __init__(self, pg=None, tls_cert=None, tls_key=None, root_token=None, ca_file=None, ca=None,
                 start_timeout=10.0, extra_args=(), keep_dir=False):
        self.pg = pg
        self.tls_cert, self.tls_key, self.ca_file = tls_cert, tls_key, ca_file or ca
        self.root_token = root_token or "hvs.root" + secrets.token_hex(8)
        self.start_timeout = start_timeout
        self.proc = None
        self.addr = None
        self.dir = None
        self.log_path = None
        self._ctx = None
        self.extra_args = list(extra_args)
        self.keep_dir = keep_dir   # keep the temp dir (with vaultdev.log) after a clean stop

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self):
        """Launch vaultdev on a free port, wait for its listening line and a healthy sys/health."""
        self.dir = tempfile.mkdtemp(prefix="vaultdev-")
        self.log_path = os.path.join(self.dir, "vaultdev.log")
        cmd = [PYTHON, VAULTDEV, "--listen", "127.0.0.1:0", "--root-token", self.root_token]
        if self.tls_cert:
            cmd += ["--tls-cert", self.tls_cert, "--tls-key", self.tls_key]
            self._ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else \
                ssl._create_unverified_context()
        cmd += self.extra_args
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + self.start_timeout
        while self.addr is None:
            with open(self.log_path, "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines():
                    if line.startswith("vaultdev: listening on "):
                        self.addr = line.split("listening on ", 1)[1].strip()
                        break
            if self.addr:
                break
            if self.proc.poll() is not None:
                raise VaultDevError("vaultdev exited with %s:\n%s" % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                self.proc.kill()
                raise VaultDevError("vaultdev did not start:\n" + self.log())
            time.sleep(0.02)
        while True:
            try:
                st, _, _ = self.api("GET", "sys/health", token="")
                if st == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise VaultDevError("vaultdev not healthy:\n" + self.log())
            time.sleep(0.02)

    def stop(self):
        """SIGTERM by PID, wait, and assert a clean exit (status 0)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise VaultDevError("vaultdev did not exit on SIGTERM")
        finally:
            self._log.close()
            self.proc = None
        assert rc == 0, "vaultdev exited with %s:\n%s" % (rc, self.log())
        if not self.keep_dir:
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    # -- raw API -----------------------------------------------------------------------------------
    def api(self, method, path, body=None, token=None, headers=None, timeout=30):
        """Call /v1/<path>. token=None uses the root token, "" sends none.
        Returns (status, parsed JSON or None, headers)."""
        url = self.addr + "/v1/" + path.lstrip("/")
        data = json.dumps(body).encode() if body is not None else None
        h = {"X-Vault-Request": "true"}
        tok = self.root_token if token is None else token
        if tok:
            h["X-Vault-Token"] = tok
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ctx) as r:
                raw, status, hdrs = r.read(), r.status, dict(r.headers)
        except urllib.error.HTTPError as e:
            raw, status, hdrs = e.read(), e.code, dict(e.headers)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return status, parsed, hdrs

    def _ok(self, method, path, body=None, token=None):
        st, js, _ = self.api(method, path, body, token)
        if st >= 300:
            raise VaultDevError("%s %s -> %s %s" % (method, path, st, js))
        return js

    # -- faults and inspection ---------------------------------------------------------------------
    def faults(self, **kw):
        """Merge fault switches (sealed, fail_next, latency_ms, drop_next, ratelimit_next,
        require_request_header, vault_flavour). Returns the new state."""
        return self._ok("POST", "sys/vaultdev/faults", kw)["data"]

    def fault_state(self):
        return self._ok("GET", "sys/vaultdev/faults")["data"]

    def reset_faults(self):
        self._ok("DELETE", "sys/vaultdev/faults")

    def requests(self, path_prefix=None):
        """The request log (oldest first): dicts with time, method, path, status, display_name, policies,
        accessor, entity."""
        q = "?path_prefix=" + urllib.parse.quote(path_prefix) if path_prefix else ""
        return self._ok("GET", "sys/vaultdev/requests" + q)["data"]["requests"]

    def clear_requests(self):
        self._ok("DELETE", "sys/vaultdev/requests")

    def sql(self):
        """SQL statements run against PostgreSQL so far (passwords shown as ***)."""
        return self._ok("GET", "sys/vaultdev/sql")["data"]["statements"]

    # -- setup helpers -----------------------------------------------------------------------------
    def mount(self, path, type_, options=None):
        """Enable a secrets engine; no error if it is already mounted with that type."""
        st, js, _ = self.api("GET", "sys/mounts")
        if path.strip("/") + "/" in js["data"]:
            return
        self._ok("POST", "sys/mounts/" + path.strip("/"), {"type": type_, "options": options or {}})

    def enable_auth(self, path, type_):
        st, js, _ = self.api("GET", "sys/auth")
        if path.strip("/") + "/" in js["data"]:
            return
        self._ok("POST", "sys/auth/" + path.strip("/"), {"type": type_})

    def setup_database(self, pg=None, role="reader", default_ttl="1h", max_ttl="24h", creation=None,
                       revocation=None, renew=None, mount="database", config="pg"):
        """Mount the database engine, write config `config` for `pg` (allowed_roles '*') and role `role`
        (CREATE ROLE ... LOGIN PASSWORD ... VALID UNTIL ...; GRANT CONNECT ...)."""
        pg = pg or self.pg
        self.mount(mount, "database")
        self._ok("POST", "%s/config/%s" % (mount, config), {
            "plugin_name": "postgresql-database-plugin", "connection_url": pg.admin_dsn,
            "username": pg.superuser, "password": pg.superuser_password, "allowed_roles": "*",
            "verify_connection": True})
        self.write_db_role(role, default_ttl=default_ttl, max_ttl=max_ttl, creation=creation,
                           revocation=revocation, renew=renew, mount=mount, config=config)

    def write_db_role(self, role, default_ttl="1h", max_ttl="24h", creation=None, revocation=None, renew=None,
                      mount="database", config="pg"):
        body = {"db_name": config, "creation_statements": creation or DEFAULT_CREATION,
                "default_ttl": default_ttl, "max_ttl": max_ttl}
        if revocation is not None:
            body["revocation_statements"] = revocation
        if renew is not None:
            body["renew_statements"] = renew
        self._ok("POST", "%s/roles/%s" % (mount, role), body)

    def setup_approle(self, role="broker", policies=("default",), token_ttl="1h", token_max_ttl="24h",
                      mount="approle", **extra):
        """Enable approle (if needed), write the role; return (role_id, secret_id)."""
        self.enable_auth(mount, "approle")
        body = {"token_policies": list(policies), "token_ttl": token_ttl, "token_max_ttl": token_max_ttl}
        body.update(extra)
        self._ok("POST", "auth/%s/role/%s" % (mount, role), body)
        role_id = self._ok("GET", "auth/%s/role/%s/role-id" % (mount, role))["data"]["role_id"]
        secret_id = self._ok("POST", "auth/%s/role/%s/secret-id" % (mount, role), {})["data"]["secret_id"]
        return role_id, secret_id

    def setup_userpass(self, user, password, policies=("default",), mount="userpass", **extra):
        """Enable userpass (if needed) and write a user."""
        self.enable_auth(mount, "userpass")
        body = {"password": password, "token_policies": list(policies)}
        body.update(extra)
        self._ok("POST", "auth/%s/users/%s" % (mount, user), body)

    def write_policy(self, name, hcl):
        """Write an ACL policy (HCL or JSON text)."""
        self._ok("PUT", "sys/policies/acl/" + name, {"policy": hcl})

    def login_approle(self, role_id, secret_id, mount="approle"):
        """Log in; returns the auth block."""
        return self._ok("POST", "auth/%s/login" % mount, {"role_id": role_id, "secret_id": secret_id},
                        token="")["auth"]
