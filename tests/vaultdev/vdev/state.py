"""Server state: mounts, policies, tokens, leases, and the revocation logic (token trees, DB leases)."""
import sys
import threading
import time
import uuid

from .database import Connection
from .policy import DEFAULT_POLICY, capabilities, parse_policy
from .util import (SYSTEM_DEFAULT_TTL, SYSTEM_MAX_TTL, VaultError, fmt_duration, new_token, rand62)


class Token:
    def __init__(self, **kw):
        self.id = kw["id"]
        self.accessor = kw.get("accessor") or rand62(24)
        self.policies = sorted(set(kw.get("policies", [])))
        self.meta = kw.get("meta")
        self.display_name = kw.get("display_name", "token")
        self.path = kw.get("path", "auth/token/create")
        self.creation_time = kw.get("creation_time", time.time())
        self.ttl = kw.get("ttl", 0)                  # creation TTL; 0 = never expires
        self.explicit_max_ttl = kw.get("explicit_max_ttl", 0)
        self.max_ttl = kw.get("max_ttl", 0)          # role/backend max (0 = system)
        self.period = kw.get("period", 0)
        self.renewable = kw.get("renewable", True)
        self.parent = kw.get("parent")               # parent token id or None (orphan)
        self.children = set()
        self.num_uses = kw.get("num_uses", 0)
        self.entity_id = kw.get("entity_id", "")
        self.role = kw.get("role")
        self.renew_check = kw.get("renew_check")     # callable(token) raising on refusal
        self.expire_time = self.creation_time + self.ttl if self.ttl else None
        self.last_renewal = None
        self.leases = set()

    def expired(self, t=None):
        return self.expire_time is not None and (t or time.time()) >= self.expire_time

    def remaining(self):
        if self.expire_time is None:
            return 0
        return max(0, int(round(self.expire_time - time.time())))

    def effective_max(self):
        m = SYSTEM_MAX_TTL
        for v in (self.max_ttl, self.explicit_max_ttl):
            if v and v < m:
                m = v
        return m

    def identity(self):
        return {"display_name": self.display_name, "policies": list(self.policies),
                "accessor": self.accessor, "entity": dict(self.meta) if self.meta else None}


class Lease:
    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.last_renewal = None
        self.revoke_attempts = 0
        self.next_attempt = 0.0
        self.revoke_error = ""


def calculate_ttl(increment, backend_ttl, backend_max, issue_time, now):
    """framework.CalculateTTL: returns (ttl, warnings) or raises 'past the max TTL'."""
    max_ttl = SYSTEM_MAX_TTL
    if backend_max and backend_max < max_ttl:
        max_ttl = backend_max
    if increment > 0:
        ttl = increment
    elif backend_ttl > 0:
        ttl = backend_ttl
    else:
        ttl = SYSTEM_DEFAULT_TTL
    max_valid = int(issue_time + max_ttl - now)
    warnings = []
    if max_valid <= 0:
        raise VaultError(400, "past the max TTL, cannot renew")
    if ttl > max_valid:
        warnings.append('TTL of "%s" exceeded the effective max_ttl of "%s"; TTL value is capped accordingly'
                        % (fmt_duration(ttl), fmt_duration(max_valid)))
        ttl = max_valid
    return ttl, warnings


class State:
    def __init__(self, root_token, log):
        self.lock = threading.RLock()
        self.log = log
        self.sql_log = []
        self.requests = []
        self.faults = {}
        self.reset_faults()
        self.policies = {"default": DEFAULT_POLICY}
        self.parsed = {"default": parse_policy(DEFAULT_POLICY)}
        self.mounts = {"sys/": {"type": "system", "options": None},
                       "cubbyhole/": {"type": "cubbyhole", "options": None},
                       "auth/token/": {"type": "token", "options": None}}
        self.mount_data = {m: {} for m in self.mounts}
        self.mount_accessors = {m: "%s_%s" % (v["type"], rand62(8).lower()) for m, v in self.mounts.items()}
        self.tokens = {}
        self.accessors = {}
        self.leases = {}
        self.db_conns = {}
        root = Token(id=root_token, policies=["root"], display_name="root", path="auth/token/root",
                     renewable=False, ttl=0)
        self._add_token(root)

    # ---- faults -------------------------------------------------------------------------------
    def reset_faults(self):
        self.faults = {"sealed": False, "fail_next": None, "latency_ms": 0, "drop_next": 0,
                       "ratelimit_next": None, "require_request_header": False, "vault_flavour": "vault"}

    # ---- policies -----------------------------------------------------------------------------
    def set_policy(self, name, text):
        if name == "root":
            raise VaultError(400, "cannot update \"root\" policy")
        self.parsed[name] = parse_policy(text)
        self.policies[name] = text

    def caps(self, token, path):
        if "root" in token.policies:
            return {"create", "read", "update", "delete", "list", "sudo", "patch"}
        return capabilities([self.parsed[p] for p in token.policies if p in self.parsed], path)

    # ---- tokens -------------------------------------------------------------------------------
    def _add_token(self, t):
        self.tokens[t.id] = t
        self.accessors[t.accessor] = t.id
        if t.parent and t.parent in self.tokens:
            self.tokens[t.parent].children.add(t.id)
        return t

    def create_token(self, **kw):
        if not kw.get("id"):
            kw["id"] = new_token()
        return self._add_token(Token(**kw))

    def lookup_token(self, tid):
        t = self.tokens.get(tid) if tid else None
        if t is None or t.expired():
            return None
        return t

    def revoke_token(self, tid):
        """Revoke a token, its children depth first, and every lease any of them created."""
        t = self.tokens.get(tid)
        if t is None:
            return
        for child in list(t.children):
            self.revoke_token(child)
        for lid in list(t.leases):
            self.revoke_lease(lid, force=True)
        self.tokens.pop(tid, None)
        self.accessors.pop(t.accessor, None)
        if t.parent in self.tokens:
            self.tokens[t.parent].children.discard(tid)
        self.log("revoked token accessor=%s display_name=%s" % (t.accessor, t.display_name))

    def renew_token(self, t, increment):
        if t.expire_time is None or not t.renewable:
            raise VaultError(400, "lease is not renewable")
        if t.renew_check:
            t.renew_check(t)
        now = time.time()
        if t.period:
            ttl, warnings = t.period, []
            if t.explicit_max_ttl:
                ttl, warnings = calculate_ttl(t.period, 0, t.explicit_max_ttl, t.creation_time, now)
        else:
            try:
                ttl, warnings = calculate_ttl(increment, t.ttl, t.effective_max(), t.creation_time, now)
            except VaultError:
                raise VaultError(400, "past the max TTL, cannot renew")
        t.expire_time = now + ttl
        t.last_renewal = now
        return ttl, warnings

    # ---- leases -------------------------------------------------------------------------------
    def db_conn(self, mount, name):
        return self.db_conns.get((mount, name))

    def add_lease(self, lease):
        self.leases[lease.id] = lease
        t = self.tokens.get(lease.token_id)
        if t is not None:
            t.leases.add(lease.id)

    def _lease_role(self, lease):
        return self.mount_data.get(lease.mount, {}).get("roles", {}).get(lease.role_name, lease.role)

    def revoke_lease(self, lid, force=False):
        """Run the backend revocation then forget the lease. With force, a failure keeps it for retry."""
        lease = self.leases.get(lid)
        if lease is None:
            return
        role = self._lease_role(lease)
        conn = self.db_conn(lease.mount, lease.conn_name)
        try:
            if conn is not None:
                conn.revoke_user(role.get("revocation_statements", []), lease.username)
        except VaultError as e:
            lease.revoke_attempts += 1
            lease.revoke_error = "; ".join(e.messages)
            lease.next_attempt = time.time() + min(10, 0.5 * 2 ** lease.revoke_attempts)
            lease.expire_time = min(lease.expire_time, time.time())
            self.log("lease %s revocation failed: %s" % (lid.rsplit("/", 1)[0], lease.revoke_error))
            if not force:
                raise VaultError(400, "failed to revoke entry: resp: (*logical.Response)(nil) err: %s"
                                 % lease.revoke_error)
            return
        self._forget_lease(lid)

    def _forget_lease(self, lid):
        lease = self.leases.pop(lid, None)
        if lease is None:
            return
        t = self.tokens.get(lease.token_id)
        if t is not None:
            t.leases.discard(lid)

    def renew_lease(self, lid, increment):
        lease = self.leases.get(lid)
        if lease is None:
            if lid.startswith("auth/"):
                raise VaultError(400, "tokens cannot be renewed through this endpoint")
            raise VaultError(400, "lease not found")
        now = time.time()
        if lease.revoke_error and now >= lease.expire_time:
            raise VaultError(400, "lease is expired and has failed previous revocation attempts")
        if now >= lease.expire_time:
            raise VaultError(400, "lease expired")
        if not lease.renewable:
            raise VaultError(400, "lease is not renewable")
        role = self._lease_role(lease)
        try:
            ttl, warnings = calculate_ttl(increment, role.get("default_ttl", 0), role.get("max_ttl", 0),
                                          lease.issue_time, now)
        except VaultError:
            raise VaultError(400, "failed to renew entry: resp: (*logical.Response)(nil) err: "
                                  "past the max TTL, cannot renew")
        conn = self.db_conn(lease.mount, lease.conn_name)
        if conn is not None:
            try:
                conn.renew_user(role.get("renew_statements", []), lease.username, now + ttl + 5)
            except VaultError as e:
                raise VaultError(400, "failed to renew entry: resp: (*logical.Response)(nil) err: %s"
                                 % "; ".join(e.messages))
        lease.expire_time = now + ttl
        lease.last_renewal = now
        lease.ttl = ttl
        return lease, ttl, warnings

    # ---- reaper -------------------------------------------------------------------------------
    def reap(self):
        now = time.time()
        with self.lock:
            for tid, t in list(self.tokens.items()):
                if tid in self.tokens and t.expired(now):
                    self.log("token expired accessor=%s display_name=%s" % (t.accessor, t.display_name))
                    self.revoke_token(tid)
            for lid, lease in list(self.leases.items()):
                if lid in self.leases and now >= lease.expire_time and now >= lease.next_attempt:
                    if lease.revoke_attempts >= 6:
                        continue  # irrevocable
                    self.log("lease expired %s" % lid.rsplit("/", 1)[0])
                    self.revoke_lease(lid, force=True)


def reaper_loop(state, stop_event, period=0.1):
    while not stop_event.wait(period):
        try:
            state.reap()
        except Exception as e:  # noqa: BLE001
            print("vaultdev: reaper error: %r" % (e,), file=sys.stderr, flush=True)


def new_uuid():
    return str(uuid.uuid4())


def make_connection(name, cfg, sql_log):
    return Connection(name, cfg, sql_log)
