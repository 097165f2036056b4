"""A private, throwaway PostgreSQL cluster for tests (Debian's PostgreSQL 15 binaries).

    pg = PgCluster(); pg.start()
    pg.psql_admin("SELECT 1")           # superuser over the unix socket in the temp dir
    ok, err = pg.login("alice", "pw")   # a real psql over TCP to 127.0.0.1 (scram-sha-256)
    pg.stop()

Needs root (initdb runs as the OS user `postgres` via runuser).
"""
import datetime
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time


def _pg_bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A PostgreSQL cluster in a fresh temp dir, listening on 127.0.0.1:<free port> and a private socket dir."""

    superuser = "postgres"
    host = "127.0.0.1"

    def __init__(self, start_timeout=30.0):
        self.bindir = _pg_bindir()
        self.start_timeout = start_timeout
        self.dir = None
        self.port = None
        self.socket_dir = None
        self.datadir = None
        self.superuser_password = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def _as_pg(self, args, **kw):
        return subprocess.run(["runuser", "-u", "postgres", "--"] + args, capture_output=True, text=True, **kw)

    def start(self):
        """initdb, configure (pg_hba: local trust, host scram-sha-256), start, wait for pg_isready."""
        if os.geteuid() != 0:
            raise RuntimeError("PgCluster needs root (initdb runs as OS user postgres)")
        self.dir = tempfile.mkdtemp(prefix="vlease-pg-")
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        self.datadir = os.path.join(self.dir, "data")
        self.socket_dir = os.path.join(self.dir, "sock")
        os.mkdir(self.socket_dir)
        shutil.chown(self.socket_dir, "postgres", "postgres")
        self.port = free_port()
        r = self._as_pg([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", self.superuser,
                         "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
                         "--locale=C.UTF-8"])
        if r.returncode != 0:
            raise RuntimeError("initdb failed: %s%s" % (r.stdout, r.stderr))
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "password_encryption = 'scram-sha-256'\nmax_connections = 100\n"
                    % (self.port, self.socket_dir))
        r = self._as_pg([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-l",
                         os.path.join(self.dir, "postgres.log"), "-w", "-t", str(int(self.start_timeout)),
                         "start"])
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start failed: %s%s\n%s" % (r.stdout, r.stderr, self.server_log()))
        deadline = time.monotonic() + self.start_timeout
        while True:
            r = subprocess.run([os.path.join(self.bindir, "pg_isready"), "-h", self.socket_dir, "-p",
                                str(self.port)], capture_output=True)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not become ready:\n" + self.server_log())
            time.sleep(0.05)
        self.superuser_password = secrets.token_urlsafe(18)
        self.psql_admin("ALTER ROLE postgres WITH PASSWORD '%s'" % self.superuser_password)
        return self

    def server_log(self):
        try:
            with open(os.path.join(self.dir, "postgres.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """Stop the server (fast mode) and remove the temp dir."""
        if self.datadir and os.path.exists(self.datadir):
            self._as_pg([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", "fast", "-w", "stop"])
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- connection strings ------------------------------------------------------------------------
    @property
    def admin_dsn(self):
        """connection_url for vaultdev's database/config, with Vault's {{username}}/{{password}} placeholders."""
        return "postgresql://{{username}}:{{password}}@%s:%d/postgres?sslmode=disable" % (self.host, self.port)

    # -- helpers -----------------------------------------------------------------------------------
    def psql_admin(self, sql, dbname="postgres"):
        """Run SQL as the superuser over the unix socket; return stdout (unaligned, tuples only)."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir,
                            "-p", str(self.port), "-U", self.superuser, "-d", dbname, "-c", sql],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("psql failed (%d): %s" % (r.returncode, r.stderr.strip()))
        return r.stdout

    def login(self, user, password, dbname="postgres"):
        """A real psql login over TCP (scram-sha-256) running SELECT 1. Returns (ok, stderr)."""
        env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
        env.pop("PGSERVICE", None)
        r = subprocess.run(["psql", "-X", "-w", "-A", "-t", "-h", self.host, "-p", str(self.port), "-U", user,
                            "-d", dbname, "-c", "SELECT 1"], capture_output=True, text=True, env=env, timeout=30)
        return (r.returncode == 0 and r.stdout.strip() == "1"), r.stderr

    def role_exists(self, name):
        return self.psql_admin("SELECT count(*) FROM pg_roles WHERE rolname = '%s'"
                               % name.replace("'", "''")).strip() == "1"

    def valid_until(self, name):
        """rolvaliduntil of the role as an aware datetime, or None (no limit or no such role)."""
        out = self.psql_admin("SELECT extract(epoch FROM rolvaliduntil) FROM pg_roles WHERE rolname = '%s'"
                              % name.replace("'", "''")).strip()
        if not out:
            return None
        return datetime.datetime.fromtimestamp(float(out), datetime.timezone.utc)
