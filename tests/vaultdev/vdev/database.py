"""Database secrets engine, PostgreSQL plugin: real connections, Vault's substitutions and default statements."""
import re
import secrets
import string
import threading
import time
import urllib.parse

import psycopg2

from .util import VaultError, pg_expiration, rand62

DEFAULT_RENEW = ['ALTER ROLE "{{name}}" VALID UNTIL \'{{expiration}}\';']


def gen_password():
    """20 chars of [a-zA-Z0-9-] with at least one lower, upper, digit and '-' (Vault's default generator)."""
    alphabet = string.ascii_letters + string.digits + "-"
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(20))
        if (any(c.islower() for c in pw) and any(c.isupper() for c in pw)
                and any(c.isdigit() for c in pw) and "-" in pw):
            return pw


def gen_username(display_name, role_name):
    name = "v-%s-%s-%s-%d" % (display_name.encode()[:8].decode("utf-8", "ignore"),
                              role_name.encode()[:8].decode("utf-8", "ignore"), rand62(20), int(time.time()))
    return name.encode()[:63].decode("utf-8", "ignore")


def quote_ident(s):
    return '"' + s.replace('"', '""') + '"'


def _split(stmt):
    """Split on ';' unless the statement is a multi-line block (DO $$ ... END $$)."""
    if "$$" in stmt or re.search(r"\bEND\b", stmt, re.I):
        return [stmt]
    return [q.strip() for q in stmt.split(";") if q.strip()]


def _render(stmt, subs):
    for k, v in subs.items():
        stmt = stmt.replace("{{%s}}" % k, v)
    return stmt


class Connection:
    """One database/config/:name entry and its (lazily opened, cached) psycopg2 connection."""

    def __init__(self, name, cfg, sql_log):
        self.name = name
        self.cfg = cfg
        self.sql_log = sql_log
        self.conn = None
        self.lock = threading.Lock()

    def dsn(self):
        url = self.cfg.get("connection_url", "")
        user = self.cfg.get("username", "")
        pw = self.cfg.get("password", "")
        if not self.cfg.get("disable_escaping"):
            user = urllib.parse.quote(user, safe="")
            pw = urllib.parse.quote(pw, safe="")
        return url.replace("{{username}}", user).replace("{{password}}", pw)

    def _connect(self):
        if self.conn is None or self.conn.closed:
            self.conn = psycopg2.connect(self.dsn(), connect_timeout=5)
        return self.conn

    def verify(self):
        with self.lock:
            c = self._connect()
            c.autocommit = True
            with c.cursor() as cur:
                cur.execute("SELECT 1")

    def close(self):
        with self.lock:
            if self.conn is not None:
                try:
                    self.conn.close()
                except Exception:  # noqa: BLE001
                    pass
                self.conn = None

    def _log(self, q, password=None):
        if password:
            q = q.replace(password, "***")
        self.sql_log.append(q)

    def _run_tx(self, statements, subs, password=None):
        """Run statements in one transaction; reconnect once if the connection went away."""
        for attempt in (0, 1):
            with self.lock:
                try:
                    c = self._connect()
                    c.autocommit = False
                    with c.cursor() as cur:
                        for stmt in statements:
                            for q in _split(_render(stmt, subs)):
                                self._log(q, password)
                                cur.execute(q)
                    c.commit()
                    return
                except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                    self.conn = None
                    if attempt:
                        raise VaultError(500, "failed to execute query: %s" % str(e).strip())
                except psycopg2.Error as e:
                    try:
                        c.rollback()
                    except Exception:  # noqa: BLE001
                        self.conn = None
                    raise VaultError(500, "failed to execute query: %s" % str(e).strip())

    def new_user(self, statements, username, password, expires_at):
        if not statements:
            raise VaultError(500, "empty creation statements")
        subs = {"name": username, "username": username, "password": password,
                "expiration": pg_expiration(expires_at)}
        self._run_tx(statements, subs, password)

    def renew_user(self, statements, username, expires_at):
        subs = {"name": username, "username": username, "expiration": pg_expiration(expires_at)}
        self._run_tx(statements or DEFAULT_RENEW, subs)

    def revoke_user(self, statements, username):
        """Custom statements in a transaction, else Vault's defaultDeleteUser sequence."""
        if statements:
            self._run_tx(statements, {"name": username, "username": username})
            return
        for attempt in (0, 1):
            try:
                return self._default_revoke(username)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                self.conn = None
                if attempt:
                    raise VaultError(500, "failed to revoke: %s" % str(e).strip())
            except psycopg2.Error as e:
                raise VaultError(500, str(e).strip())

    def _default_revoke(self, username):
        with self.lock:
            c = self._connect()
            c.autocommit = True
            errors = []
            with c.cursor() as cur:
                cur.execute("SELECT exists (SELECT rolname FROM pg_roles WHERE rolname=%s)", (username,))
                if not cur.fetchone()[0]:
                    return
                cur.execute("SELECT DISTINCT table_schema FROM information_schema.role_column_grants "
                            "WHERE grantee=%s", (username,))
                schemas = [r[0] for r in cur.fetchall()]
                cur.execute("SELECT current_database()")
                dbname = cur.fetchone()[0]
                u = quote_ident(username)
                qs = []
                for s in schemas:
                    qs.append("REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA %s FROM %s;" % (quote_ident(s), u))
                    qs.append("REVOKE USAGE ON SCHEMA %s FROM %s;" % (quote_ident(s), u))
                qs += ["REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM %s;" % u,
                       "REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM %s;" % u,
                       "REVOKE USAGE ON SCHEMA public FROM %s;" % u,
                       "REVOKE CONNECT ON DATABASE %s FROM %s;" % (quote_ident(dbname), u)]
                for q in qs:
                    self._log(q)
                    try:
                        cur.execute(q)
                    except psycopg2.Error as e:
                        errors.append(str(e).strip())
                if errors:
                    raise VaultError(500, "could not perform all revocation statements: %s" % "; ".join(errors))
                q = "DROP ROLE IF EXISTS %s;" % u
                self._log(q)
                cur.execute(q)
