"""Logical request routing and the endpoint handlers (sys, token, approle, userpass, database, kv)."""
import fnmatch
import hmac
import re
import time
import uuid

from . import state as st
from .util import (SYSTEM_DEFAULT_TTL, SYSTEM_MAX_TTL, VaultError, as_bool, as_int, as_list, as_statements,
                   bad_request, multierr, parse_duration, permission_denied, rand62, rfc3339nano)
from .database import gen_password, gen_username

NAME_RE = re.compile(r"^\w(([\w\-.]+)?\w)?$")
KV_DEFAULT_TTL = 2764800


class Req:
    def __init__(self, method, op, path, body, query, token, headers, raw_token=None):
        self.method, self.op, self.path, self.body, self.query = method, op, path, body, query
        self.token, self.headers, self.raw_token = token, headers, raw_token
        self.mount_type = None


class Resp:
    def __init__(self, status=200, body=None, headers=None):
        self.status, self.body, self.headers = status, body, headers or {}


def envelope(req, data=None, auth=None, lease_id="", renewable=False, lease_duration=0, warnings=None,
             status=200, extra=None):
    body = {"request_id": str(uuid.uuid4()), "lease_id": lease_id, "renewable": renewable,
            "lease_duration": int(lease_duration), "data": data, "wrap_info": None,
            "warnings": warnings or None, "auth": auth}
    if extra:
        for k, v in extra.items():
            body.setdefault(k, v)
    body["_mount_type"] = req.mount_type
    return Resp(status, body)


def no_content():
    return Resp(204)


def not_found():
    return Resp(404, {"errors": []})


def unsupported_path():
    return VaultError(404, multierr("unsupported path"))


def unsupported_op():
    return VaultError(405, multierr("unsupported operation"))


def list_resp(req, keys):
    if not keys:
        return not_found()
    return envelope(req, {"keys": sorted(keys)})


def dur(body, key, default=0):
    return parse_duration(body.get(key), key) if body.get(key) not in (None, "") else default


# ------------------------------------------------------------------------------------------------
class Api:
    def __init__(self, state):
        self.s = state

    # ---- dispatch -------------------------------------------------------------------------------
    def find_mount(self, path):
        best = None
        for m in self.s.mounts:
            if (path + "/").startswith(m) and (best is None or len(m) > len(best)):
                best = m
        return best

    def is_unauth(self, path):
        m = self.find_mount(path)
        if m is None or not m.startswith("auth/"):
            return False
        rest = path[len(m):]
        t = self.s.mounts[m]["type"]
        return (t == "approle" and rest == "login") or (t == "userpass" and rest.startswith("login/"))

    def sudo_required(self, path, op):
        return (path.startswith("sys/leases/revoke-prefix/") or path.startswith("sys/leases/revoke-force/")
                or path.startswith("auth/token/revoke-orphan") or path.startswith("auth/token/accessors")
                or (path.startswith("sys/leases/lookup/") and op == "list"))

    def authorize(self, req):
        """Token check then ACL check (before routing, as Vault does)."""
        if self.is_unauth(req.path):
            return
        if req.token is None:
            if req.raw_token and self.s.faults.get("vault_flavour", "vault") == "vault":
                raise VaultError(403, "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n")
            raise VaultError(403, "permission denied")
        acl_path = req.path + "/" if req.op == "list" and not req.path.endswith("/") else req.path
        caps = self.s.caps(req.token, acl_path)
        if "deny" in caps:
            raise permission_denied()
        need = {"read": {"read"}, "list": {"list"}, "update": {"update", "create"},
                "delete": {"delete"}, "patch": {"patch"}}[req.op]
        if not caps & need:
            raise permission_denied()
        if self.sudo_required(req.path, req.op) and "sudo" not in caps:
            raise permission_denied()

    def handle(self, req):
        if req.op in ("update", "create") and req.path.endswith("/"):
            raise bad_request("cannot write to a path ending in '/'")
        self.authorize(req)
        path = req.path.rstrip("/")
        m = self.find_mount(path)
        if m is None:
            raise VaultError(404, 'no handler for route "%s". route entry not found.' % path)
        mtype = self.s.mounts[m]["type"]
        req.mount_type = {"system": "system", "token": "token"}.get(mtype, mtype)
        rest = path[len(m):] if len(path) >= len(m) else ""
        if mtype == "system":
            return self.sys(req, rest)
        if mtype == "token":
            return self.token(req, rest)
        if mtype == "approle":
            return self.approle(req, m, rest)
        if mtype == "userpass":
            return self.userpass(req, m, rest)
        if mtype == "database":
            return self.database(req, m, rest)
        if mtype == "kv":
            if (self.s.mounts[m].get("options") or {}).get("version") == "2":
                return self.kv2(req, m, rest)
            return self.kv1(req, m, rest)
        raise unsupported_path()

    # ---- sys --------------------------------------------------------------------------------------
    def mount_info(self, m):
        v = self.s.mounts[m]
        return {"type": v["type"], "description": v.get("description", ""), "accessor": self.s.mount_accessors[m],
                "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False},
                "options": v.get("options"), "local": False, "seal_wrap": False,
                "external_entropy_access": False, "uuid": v.setdefault("uuid", str(uuid.uuid4()))}

    def sys(self, req, rest):
        s, b, op = self.s, req.body, req.op
        if rest == "seal-status" and op == "read":
            return Resp(200, {"type": "shamir", "initialized": True, "sealed": False, "t": 1, "n": 1,
                              "progress": 0, "nonce": "", "version": "1.17.0", "migration": False,
                              "recovery_seal": False, "storage_type": "inmem"})
        if rest in ("mounts", "auth") and op == "read":
            auth = rest == "auth"
            data = {(m[5:] if auth else m): self.mount_info(m) for m in s.mounts
                    if m.startswith("auth/") == auth}
            return envelope(req, data, extra=data)
        for kind in ("mounts/", "auth/"):
            if rest.startswith(kind):
                auth = kind == "auth/"
                sub = rest[len(kind):]
                if sub.endswith("/tune"):
                    mp = ("auth/" if auth else "") + sub[:-5] + "/"
                    if mp not in s.mounts:
                        raise bad_request("cannot fetch sysview for path \"%s\"" % mp)
                    if op == "read":
                        d = {"default_lease_ttl": SYSTEM_DEFAULT_TTL, "max_lease_ttl": SYSTEM_MAX_TTL,
                             "force_no_cache": False, "description": s.mounts[mp].get("description", ""),
                             "options": s.mounts[mp].get("options")}
                        return envelope(req, d, extra=d)
                    return no_content()
                mp = ("auth/" if auth else "") + sub.strip("/") + "/"
                if op == "update":
                    return self.enable_mount(req, mp, auth)
                if op == "delete":
                    if mp in ("sys/", "auth/token/", "cubbyhole/"):
                        raise bad_request("cannot unmount \"%s\"" % mp)
                    if mp in s.mounts:
                        for lid in [x for x in s.leases if x.startswith(mp)]:
                            s.revoke_lease(lid, force=True)
                        for tid in [t.id for t in s.tokens.values() if t.path.startswith(mp)]:
                            s.revoke_token(tid)
                        for k, c in list(s.db_conns.items()):
                            if k[0] == mp:
                                c.close()
                                del s.db_conns[k]
                        del s.mounts[mp]
                        s.mount_data.pop(mp, None)
                    return no_content()
                if op == "read":
                    if mp not in s.mounts:
                        raise bad_request("No %s mount at %s" % ("auth" if auth else "secret engine", mp))
                    return envelope(req, self.mount_info(mp))
                raise unsupported_op()
        if rest in ("policy", "policies/acl"):
            if op in ("read", "list"):
                names = sorted(set(s.policies) | {"root"})
                if rest == "policy":
                    return envelope(req, {"policies": names, "keys": names},
                                    extra={"policies": names, "keys": names})
                return list_resp(req, names)
            raise unsupported_op()
        for prefix in ("policy/", "policies/acl/"):
            if rest.startswith(prefix):
                name = rest[len(prefix):].lower()
                if op == "read":
                    if name == "root":
                        txt = ""
                    elif name not in s.policies:
                        return not_found()
                    else:
                        txt = s.policies[name]
                    if prefix == "policy/":
                        d = {"name": name, "rules": txt}
                        return envelope(req, d, extra=d)
                    return envelope(req, {"name": name, "policy": txt})
                if op == "update":
                    txt = b.get("policy", b.get("rules"))
                    if not isinstance(txt, str) or not txt.strip():
                        raise bad_request("'policy' parameter not supplied or empty")
                    s.set_policy(name, txt)
                    return no_content()
                if op == "delete":
                    if name in ("root", "default"):
                        raise bad_request("cannot delete \"%s\" policy" % name)
                    s.policies.pop(name, None)
                    s.parsed.pop(name, None)
                    return no_content()
                raise unsupported_op()
        legacy = s.faults.get("vault_flavour") == "vault"
        lease_paths = {"leases/renew": "renew", "leases/revoke": "revoke", "leases/lookup": "lookup"}
        if legacy:
            lease_paths.update({"renew": "renew", "revoke": "revoke"})
        for p, what in lease_paths.items():
            if rest == p or (rest.startswith(p + "/") and what != "lookup"):
                url_id = rest[len(p) + 1:] if rest.startswith(p + "/") else ""
                if op != "update":
                    raise unsupported_op()
                lid = b.get("lease_id") or url_id
                if what == "renew":
                    return self.lease_renew(req, lid)
                if what == "revoke":
                    if not lid:
                        raise bad_request("lease_id must be specified")
                    if not as_bool(b.get("sync"), True):
                        lease = s.leases.get(lid)
                        if lease:
                            lease.expire_time = min(lease.expire_time, time.time())
                        return Resp(202)
                    s.revoke_lease(lid)
                    return no_content()
                return self.lease_lookup(req, lid)
        if rest.startswith("leases/lookup/") and op == "list":
            prefix = rest[len("leases/lookup/"):].rstrip("/") + "/"
            keys = set()
            for lid in s.leases:
                if lid.startswith(prefix):
                    tail = lid[len(prefix):]
                    keys.add(tail.split("/", 1)[0] + ("/" if "/" in tail else ""))
            return list_resp(req, keys)
        for p in ("leases/revoke-prefix/", "leases/revoke-force/") + (
                ("revoke-prefix/", "revoke-force/") if legacy else ()):
            if rest.startswith(p):
                if op != "update":
                    raise unsupported_op()
                prefix = rest[len(p):]
                force = "force" in p
                for lid in [x for x in s.leases if x.startswith(prefix)]:
                    if force:
                        s.revoke_lease(lid, force=True)
                        s._forget_lease(lid)
                    else:
                        s.revoke_lease(lid)
                for tid in [t.id for t in s.tokens.values() if t.path.startswith(prefix) and t.id in s.tokens]:
                    s.revoke_token(tid)
                if not as_bool(b.get("sync"), True):
                    return Resp(202)
                return no_content()
        if rest == "capabilities-self" and op == "update":
            paths = as_list(b.get("paths") or b.get("path"))
            d = {}
            for p in paths:
                caps = sorted(s.caps(req.token, p)) or ["deny"]
                if "root" in req.token.policies:
                    caps = ["root"]
                d[p] = caps
            d["capabilities"] = d[paths[0]] if len(paths) == 1 else []
            return envelope(req, d, extra=d)
        raise unsupported_path()

    def enable_mount(self, req, mp, auth):
        s, b = self.s, req.body
        t = b.get("type", "")
        opts = b.get("options") or {}
        if auth:
            if t not in ("approle", "userpass"):
                raise bad_request('unknown backend type: "%s"' % t if t else "backend type must be specified")
        else:
            if t == "kv-v2":
                t, opts = "kv", dict(opts, version="2")
            if t == "kv":
                opts = dict(opts)
                opts["version"] = str(opts.get("version") or "1")
            elif t != "database":
                raise bad_request("plugin not found in the catalog: %s" % t if t else "backend type must be specified")
        for m in s.mounts:
            if m.startswith(mp) or mp.startswith(m):
                raise bad_request("path is already in use at %s" % m)
        s.mounts[mp] = {"type": t, "options": opts if opts else None, "description": b.get("description", "")}
        s.mount_data[mp] = {}
        s.mount_accessors[mp] = "%s_%s" % (t, rand62(8).lower())
        return no_content()

    def lease_renew(self, req, lid):
        if not lid:
            raise bad_request("lease_id must be specified")
        inc = dur(req.body, "increment")
        lease, ttl, warnings = self.s.renew_lease(lid, inc)
        return envelope(req, None, lease_id=lid, renewable=True, lease_duration=ttl, warnings=warnings)

    def lease_lookup(self, req, lid):
        if not lid:
            raise bad_request("lease_id must be specified")
        lease = self.s.leases.get(lid)
        if lease is None:
            raise bad_request("invalid lease")
        d = {"id": lid, "issue_time": rfc3339nano(lease.issue_time), "expire_time": rfc3339nano(lease.expire_time),
             "last_renewal": rfc3339nano(lease.last_renewal),
             "ttl": max(0, int(round(lease.expire_time - time.time()))), "renewable": lease.renewable,
             "path": lease.path}
        if lease.revoke_error:
            d["revoke_error"] = lease.revoke_error
        return envelope(req, d)

    # ---- tokens ---------------------------------------------------------------------------------
    def auth_block(self, t, client_token=None):
        return {"client_token": t.id if client_token is None else client_token, "accessor": t.accessor,
                "policies": list(t.policies), "token_policies": list(t.policies), "metadata": t.meta,
                "lease_duration": t.remaining(), "renewable": t.renewable and t.expire_time is not None,
                "entity_id": t.entity_id, "token_type": "service", "orphan": t.parent is None,
                "mfa_requirement": None, "num_uses": t.num_uses}

    def token_data(self, t, with_id=True):
        d = {"accessor": t.accessor, "creation_time": int(t.creation_time), "creation_ttl": t.ttl,
             "display_name": t.display_name, "entity_id": t.entity_id,
             "expire_time": rfc3339nano(t.expire_time), "explicit_max_ttl": t.explicit_max_ttl,
             "id": t.id if with_id else "", "issue_time": rfc3339nano(t.creation_time), "meta": t.meta,
             "num_uses": t.num_uses, "orphan": t.parent is None, "path": t.path, "policies": list(t.policies),
             "renewable": t.renewable and t.expire_time is not None, "ttl": t.remaining(), "type": "service"}
        if t.last_renewal:
            d["last_renewal_time"] = int(t.last_renewal)
            d["last_renewal"] = rfc3339nano(t.last_renewal)
        if t.period:
            d["period"] = t.period
        if t.role:
            d["role"] = t.role
        return d

    def _target(self, req, by):
        b, s = req.body, self.s
        if by == "accessor":
            acc = b.get("accessor")
            if not acc:
                raise bad_request("missing accessor")
            tid = s.accessors.get(acc)
            t = s.lookup_token(tid)
            if t is None:
                raise bad_request("invalid accessor")
            return t
        tok = b.get("token")
        if not tok:
            raise bad_request("missing token")
        return s.lookup_token(tok)

    def token(self, req, rest):
        s, b, op = self.s, req.body, req.op
        if rest in ("create", "create-orphan"):
            if op != "update":
                raise unsupported_op()
            return self.token_create(req, orphan_path=rest == "create-orphan")
        if rest == "lookup-self":
            if op not in ("read", "update"):
                raise unsupported_op()
            return envelope(req, self.token_data(req.token))
        if rest in ("lookup", "lookup-accessor") or rest.startswith("lookup/"):
            if rest.startswith("lookup/"):
                b = dict(b, token=rest[len("lookup/"):])
                req.body = b
            if op not in ("read", "update"):
                raise unsupported_op()
            if rest == "lookup-accessor":
                return envelope(req, self.token_data(self._target(req, "accessor"), with_id=False))
            if not b.get("token"):
                return envelope(req, self.token_data(req.token))
            t = s.lookup_token(b["token"])
            if t is None:
                raise VaultError(403, "bad token")
            return envelope(req, self.token_data(t))
        if rest in ("renew-self", "renew", "renew-accessor") or rest.startswith("renew/"):
            if op != "update":
                raise unsupported_op()
            if rest.startswith("renew/"):
                req.body = b = dict(b, token=b.get("token") or rest[len("renew/"):])
            if rest == "renew-self":
                t = req.token
            elif rest == "renew-accessor":
                t = self._target(req, "accessor")
            else:
                t = self._target(req, "token")
                if t is None:
                    raise bad_request("invalid token")
            ttl, warnings = s.renew_token(t, dur(b, "increment"))
            auth = self.auth_block(t, client_token="" if rest == "renew-accessor" else None)
            auth["lease_duration"] = ttl
            return envelope(req, None, auth=auth, warnings=warnings)
        if rest in ("revoke-self", "revoke", "revoke-accessor", "revoke-orphan") or rest.startswith("revoke/"):
            if op != "update":
                raise unsupported_op()
            if rest.startswith("revoke/"):
                req.body = b = dict(b, token=b.get("token") or rest[len("revoke/"):])
            if rest == "revoke-self":
                s.revoke_token(req.token.id)
            elif rest == "revoke-accessor":
                s.revoke_token(self._target(req, "accessor").id)
            elif rest == "revoke-orphan":
                t = self._target(req, "token")
                if t is not None:
                    for c in list(t.children):
                        if c in s.tokens:
                            s.tokens[c].parent = None
                    t.children.clear()
                    s.revoke_token(t.id)
            else:
                t = self._target(req, "token")
                if t is not None:
                    s.revoke_token(t.id)
            return no_content()
        if rest == "accessors" and op == "list":
            return list_resp(req, [t.accessor for t in s.tokens.values() if not t.expired()])
        raise unsupported_path()

    def token_create(self, req, orphan_path=False):
        s, b, parent = self.s, req.body, req.token
        is_root = "root" in parent.policies
        sudo = is_root or "sudo" in s.caps(parent, req.path)
        policies = as_list(b.get("policies"))
        if not policies:   # none given: inherit the parent's
            policies = [p for p in parent.policies]
        policies = sorted(set(p.lower() for p in policies))
        if not as_bool(b.get("no_default_policy")) and "root" not in policies and "default" not in policies:
            policies.append("default")
        policies = sorted(set(policies))
        if not is_root:
            extra = set(policies) - set(parent.policies) - {"default"}
            if extra:
                raise bad_request("child policies must be subset of parent")
        no_parent = as_bool(b.get("no_parent")) or orphan_path
        if as_bool(b.get("no_parent")) and not sudo:
            raise bad_request("root or sudo privileges required to create orphan token")
        ttl = dur(b, "ttl", dur(b, "lease"))
        explicit = dur(b, "explicit_max_ttl")
        period = dur(b, "period")
        warnings = []
        if period:
            ttl = period
        if ttl == 0 and not (policies == ["root"] and explicit == 0):
            ttl = SYSTEM_DEFAULT_TTL
        if explicit and ttl > explicit:
            warnings.append("explicit max TTL of %d is less than TTL; using explicit max TTL" % explicit)
            ttl = explicit
        if ttl > SYSTEM_MAX_TTL and not period:
            ttl = SYSTEM_MAX_TTL
        dn = b.get("display_name") or ""
        display = "token"
        if dn:
            display = re.sub(r"[^a-zA-Z0-9-]", "-", "token-" + dn).rstrip("-")
        meta = b.get("meta") or None
        if meta is not None:
            if not isinstance(meta, dict):
                raise bad_request("meta must be a map of strings")
            meta = {str(k): str(v) for k, v in meta.items()}
        tid = b.get("id") if is_root and b.get("id") else None
        if tid and tid in s.tokens:
            raise bad_request("cannot create a token with a duplicate ID")
        t = s.create_token(id=tid or None, policies=policies, meta=meta, display_name=display,
                           path=req.path, ttl=ttl, explicit_max_ttl=explicit, period=period,
                           renewable=as_bool(b.get("renewable"), True),
                           parent=None if no_parent else parent.id, num_uses=as_int(b.get("num_uses")))
        if t.id is None:
            pass
        return envelope(req, None, auth=self.auth_block(t), warnings=warnings)

    def login_token(self, req, mount, display, meta, cfg, entity_key, renew_check=None):
        """Issue an orphan service token from an auth method's role/user settings."""
        policies = as_list(cfg.get("token_policies"))
        if not as_bool(cfg.get("token_no_default_policy")):
            policies.append("default")
        ttl = cfg.get("token_ttl", 0) or SYSTEM_DEFAULT_TTL
        max_ttl = cfg.get("token_max_ttl", 0)
        explicit = cfg.get("token_explicit_max_ttl", 0)
        period = cfg.get("token_period", 0)
        if period:
            ttl = period
        for cap in (max_ttl, explicit):
            if cap and ttl > cap:
                ttl = cap
        ents = self.s.mount_data[mount].setdefault("entities", {})
        entity = ents.setdefault(entity_key, str(uuid.uuid4()))
        t = self.s.create_token(policies=policies, meta=meta, display_name=display, path=req.path, ttl=ttl,
                                max_ttl=max_ttl, explicit_max_ttl=explicit, period=period, parent=None,
                                num_uses=as_int(cfg.get("token_num_uses")), entity_id=entity,
                                renew_check=renew_check)
        t.ttl = ttl if not period else period
        return envelope(req, None, auth=self.auth_block(t))

    @staticmethod
    def token_fields(b, cfg):
        for k in ("token_ttl", "token_max_ttl", "token_explicit_max_ttl", "token_period"):
            if k in b:
                cfg[k] = parse_duration(b[k], k)
        if "ttl" in b and "token_ttl" not in b:
            cfg["token_ttl"] = parse_duration(b["ttl"], "ttl")
        if "max_ttl" in b and "token_max_ttl" not in b:
            cfg["token_max_ttl"] = parse_duration(b["max_ttl"], "max_ttl")
        if "token_policies" in b:
            cfg["token_policies"] = as_list(b["token_policies"])
        elif "policies" in b:
            cfg["token_policies"] = as_list(b["policies"])
        for k in ("token_no_default_policy",):
            if k in b:
                cfg[k] = as_bool(b[k])
        if "token_num_uses" in b:
            cfg["token_num_uses"] = as_int(b["token_num_uses"])
        if "token_type" in b:
            cfg["token_type"] = b["token_type"] or "default"
        if "token_bound_cidrs" in b:
            cfg["token_bound_cidrs"] = as_list(b["token_bound_cidrs"])
        if cfg.get("token_max_ttl") and cfg.get("token_ttl", 0) > cfg["token_max_ttl"]:
            raise bad_request('"token_ttl" cannot be greater than "token_max_ttl"')

    @staticmethod
    def token_fields_out(cfg):
        return {"token_ttl": cfg.get("token_ttl", 0), "token_max_ttl": cfg.get("token_max_ttl", 0),
                "token_explicit_max_ttl": cfg.get("token_explicit_max_ttl", 0),
                "token_period": cfg.get("token_period", 0), "token_policies": cfg.get("token_policies", []),
                "policies": cfg.get("token_policies", []),
                "token_no_default_policy": cfg.get("token_no_default_policy", False),
                "token_num_uses": cfg.get("token_num_uses", 0), "token_type": cfg.get("token_type", "default"),
                "token_bound_cidrs": cfg.get("token_bound_cidrs", [])}

    # ---- approle --------------------------------------------------------------------------------
    def approle(self, req, m, rest):
        s, b, op = self.s, req.body, req.op
        roles = s.mount_data[m].setdefault("roles", {})
        display = m[5:].rstrip("/").replace("/", "-")
        if rest == "login":
            if op != "update":
                raise unsupported_op()
            rid = str(b.get("role_id") or "")
            if not rid:
                raise bad_request("missing role_id")
            name = next((n for n, r in roles.items() if r["role_id"] == rid), None)
            role = roles.get(name)
            if role is None:
                raise bad_request("invalid role or secret ID")
            if role.get("bind_secret_id", True):
                sid = str(b.get("secret_id") or "")
                if not sid:
                    raise bad_request("missing secret_id")
                ent = role["secret_ids"].get(sid)
                if ent is None or (ent["expire"] and time.time() >= ent["expire"]):
                    role["secret_ids"].pop(sid, None)
                    raise bad_request("invalid role or secret ID")
                if ent["num_uses"]:
                    ent["num_uses"] -= 1
                    if ent["num_uses"] == 0:
                        del role["secret_ids"][sid]

            def check(tok, roles=roles, name=name):
                if name not in roles:
                    raise bad_request('role "%s" does not exist during renewal' % name)
            return self.login_token(req, m, display, {"role_name": name}, role, ("role", name), check)
        if rest == "role":
            if op != "list":
                raise unsupported_op()
            return list_resp(req, list(roles))
        mt = re.match(r"^role/([^/]+)(?:/(.*))?$", rest)
        if not mt:
            raise unsupported_path()
        name, sub = mt.group(1).lower(), mt.group(2) or ""
        if not NAME_RE.match(name):
            raise unsupported_path()
        role = roles.get(name)
        if sub == "":
            if op == "update":
                if role is None:
                    role = {"role_id": str(uuid.uuid4()), "bind_secret_id": True, "secret_ids": {},
                            "secret_id_num_uses": 0, "secret_id_ttl": 0}
                new = dict(role)
                if "bind_secret_id" in b:
                    new["bind_secret_id"] = as_bool(b["bind_secret_id"], True)
                if "secret_id_num_uses" in b:
                    new["secret_id_num_uses"] = as_int(b["secret_id_num_uses"])
                if "secret_id_ttl" in b:
                    new["secret_id_ttl"] = parse_duration(b["secret_id_ttl"], "secret_id_ttl")
                if "role_id" in b and b["role_id"]:
                    new["role_id"] = str(b["role_id"])
                for k in ("secret_id_bound_cidrs", "token_bound_cidrs"):
                    if k in b:
                        new[k] = as_list(b[k])
                self.token_fields(b, new)
                roles[name] = new
                return no_content()
            if op == "read":
                if role is None:
                    return not_found()
                d = {"bind_secret_id": role["bind_secret_id"], "secret_id_num_uses": role["secret_id_num_uses"],
                     "secret_id_ttl": role["secret_id_ttl"], "local_secret_ids": False,
                     "secret_id_bound_cidrs": role.get("secret_id_bound_cidrs", [])}
                d.update(self.token_fields_out(role))
                return envelope(req, d)
            if op == "delete":
                roles.pop(name, None)
                return no_content()
            raise unsupported_op()
        if role is None:
            if op == "read":
                return not_found()
            raise bad_request('role "%s" does not exist' % name)
        if sub == "role-id":
            if op == "read":
                return envelope(req, {"role_id": role["role_id"]})
            if op == "update":
                if not b.get("role_id"):
                    raise bad_request("missing role_id")
                role["role_id"] = str(b["role_id"])
                return no_content()
            raise unsupported_op()
        if sub in ("secret-id", "custom-secret-id"):
            if op == "list" and sub == "secret-id":
                return list_resp(req, [e["accessor"] for e in role["secret_ids"].values()])
            if op != "update":
                raise unsupported_op()
            sid = str(b.get("secret_id")) if sub == "custom-secret-id" and b.get("secret_id") else str(uuid.uuid4())
            ttl = parse_duration(b.get("ttl"), "ttl") if b.get("ttl") else role["secret_id_ttl"]
            uses = as_int(b.get("num_uses"), role["secret_id_num_uses"])
            meta = b.get("metadata")
            if isinstance(meta, str):
                import json
                meta = json.loads(meta) if meta else {}
            ent = {"accessor": str(uuid.uuid4()), "num_uses": uses, "ttl": ttl, "creation": time.time(),
                   "expire": time.time() + ttl if ttl else 0, "metadata": meta or {}}
            role["secret_ids"][sid] = ent
            return envelope(req, {"secret_id": sid, "secret_id_accessor": ent["accessor"], "secret_id_ttl": ttl,
                                  "secret_id_num_uses": uses})
        if sub in ("secret-id/lookup", "secret-id/destroy", "secret-id-accessor/lookup",
                   "secret-id-accessor/destroy"):
            if sub.startswith("secret-id-accessor"):
                acc = b.get("secret_id_accessor")
                sid = next((k for k, e in role["secret_ids"].items() if e["accessor"] == acc), None)
                if sid is None:
                    raise bad_request("failed to find accessor entry for secret_id_accessor: \"%s\"" % acc)
            else:
                sid = b.get("secret_id")
                if not sid:
                    raise bad_request("missing secret_id")
            ent = role["secret_ids"].get(sid)
            if sub.endswith("destroy"):
                role["secret_ids"].pop(sid, None)
                return no_content()
            if ent is None:
                return no_content()
            return envelope(req, {"secret_id_accessor": ent["accessor"], "secret_id_num_uses": ent["num_uses"],
                                  "secret_id_ttl": ent["ttl"], "metadata": ent["metadata"],
                                  "creation_time": rfc3339nano(ent["creation"]),
                                  "expiration_time": rfc3339nano(ent["expire"]) if ent["expire"] else
                                  "0001-01-01T00:00:00Z", "cidr_list": [], "token_bound_cidrs": []})
        raise unsupported_path()

    # ---- userpass -------------------------------------------------------------------------------
    def userpass(self, req, m, rest):
        s, b, op = self.s, req.body, req.op
        users = s.mount_data[m].setdefault("users", {})
        mdisp = m[5:].rstrip("/").replace("/", "-")
        if rest.startswith("login/"):
            name = rest[len("login/"):].lower()
            if not NAME_RE.match(name):
                raise unsupported_path()
            if op != "update":
                raise unsupported_op()
            pw = b.get("password")
            if not pw:
                raise VaultError(500, "missing password")
            u = users.get(name)
            ok = hmac.compare_digest(str(pw).encode(), (u["password"] if u else "\0dummy").encode())
            if u is None or not ok:
                raise bad_request("invalid username or password")
            pol_at_login = list(u.get("token_policies", []))

            def check(tok, users=users, name=name, pol=pol_at_login):
                cur = users.get(name)
                if cur is None:
                    raise bad_request("user no longer exists")
                if sorted(cur.get("token_policies", [])) != sorted(pol):
                    raise bad_request("policies have changed, not renewing")
            return self.login_token(req, m, "%s-%s" % (mdisp, name), {"username": name}, u, ("user", name),
                                    check)
        if rest == "users":
            if op != "list":
                raise unsupported_op()
            return list_resp(req, list(users))
        mt = re.match(r"^users/([^/]+)(?:/(password|policies))?$", rest)
        if not mt or not NAME_RE.match(mt.group(1)):
            raise unsupported_path()
        name, sub = mt.group(1).lower(), mt.group(2)
        u = users.get(name)
        if sub:
            if op != "update":
                raise unsupported_op()
            if u is None:
                raise bad_request("username does not exist")
            if sub == "password":
                if not b.get("password"):
                    raise bad_request("missing password")
                u["password"] = str(b["password"])
            else:
                self.token_fields({"token_policies": b.get("token_policies", b.get("policies"))}, u)
            return no_content()
        if op == "update":
            new = dict(u or {})
            if "password" in b:
                new["password"] = str(b["password"])
            if not new.get("password"):
                raise bad_request("missing password")
            self.token_fields(b, new)
            users[name] = new
            return no_content()
        if op == "read":
            if u is None:
                return not_found()
            return envelope(req, self.token_fields_out(u))
        if op == "delete":
            users.pop(name, None)
            return no_content()
        raise unsupported_op()

    # ---- database -------------------------------------------------------------------------------
    def database(self, req, m, rest):
        s, b, op = self.s, req.body, req.op
        md = s.mount_data[m]
        configs = md.setdefault("configs", {})
        roles = md.setdefault("roles", {})
        if rest in ("config", "roles"):
            if op != "list":
                raise unsupported_op()
            return list_resp(req, list(configs if rest == "config" else roles))
        mt = re.match(r"^(config|roles|creds|reset)/([^/]+)$", rest)
        if not mt:
            raise unsupported_path()
        kind, name = mt.group(1), mt.group(2)
        if kind == "config":
            if op == "update":
                return self.db_config_write(req, m, name)
            if op == "read":
                c = configs.get(name)
                if c is None:
                    return not_found()
                det = {k: v for k, v in c.items() if k not in ("password", "plugin_name", "allowed_roles",
                                                                 "verify_connection", "password_policy",
                                                                 "root_rotation_statements", "plugin_version")}
                return envelope(req, {"plugin_name": c["plugin_name"], "plugin_version": "",
                                      "allowed_roles": c.get("allowed_roles", []), "connection_details": det,
                                      "password_policy": c.get("password_policy", ""),
                                      "root_credentials_rotate_statements": c.get("root_rotation_statements", []),
                                      "verify_connection": c.get("verify_connection", True)})
            if op == "delete":
                configs.pop(name, None)
                conn = s.db_conns.pop((m, name), None)
                if conn:
                    conn.close()
                return no_content()
            raise unsupported_op()
        if kind == "reset":
            if op != "update":
                raise unsupported_op()
            conn = s.db_conns.get((m, name))
            if conn is None:
                raise bad_request("unable to reset connection: no connection named \"%s\"" % name)
            conn.close()
            return no_content()
        if kind == "roles":
            if op == "update":
                r = dict(roles.get(name) or {"creation_statements": [], "revocation_statements": [],
                                            "renew_statements": [], "rollback_statements": [],
                                            "default_ttl": 0, "max_ttl": 0})
                if "db_name" in b:
                    r["db_name"] = b["db_name"]
                if not r.get("db_name"):
                    raise bad_request("empty database name attribute")
                for k in ("creation_statements", "revocation_statements", "renew_statements",
                          "rollback_statements"):
                    if k in b:
                        r[k] = as_statements(b[k])
                for k in ("default_ttl", "max_ttl"):
                    if k in b:
                        r[k] = parse_duration(b[k], k)
                if r["max_ttl"] and r["default_ttl"] > r["max_ttl"]:
                    raise bad_request("ttl cannot be greater than max_ttl")
                r["credential_type"] = b.get("credential_type", r.get("credential_type", "password"))
                roles[name] = r
                return no_content()
            if op == "read":
                r = roles.get(name)
                if r is None:
                    return not_found()
                d = dict(r)
                d.setdefault("credential_config", None)
                return envelope(req, d)
            if op == "delete":
                roles.pop(name, None)
                return no_content()
            raise unsupported_op()
        # creds
        if op != "read":
            raise unsupported_op()
        role = roles.get(name)
        if role is None:
            raise bad_request("unknown role: %s" % name)
        cfg = configs.get(role["db_name"])
        if cfg is None:
            raise VaultError(500, "could not find DB with name: %s" % role["db_name"])
        allowed = cfg.get("allowed_roles", [])
        if not any(fnmatch.fnmatchcase(name, p) for p in allowed):
            raise VaultError(500, '"%s" is not an allowed role' % name)
        now = time.time()
        ttl, _ = st.calculate_ttl(0, role["default_ttl"], role["max_ttl"], now, now)
        username = gen_username(req.token.display_name, name)
        password = gen_password()
        conn = self.db_connection(m, role["db_name"])
        conn.new_user(role["creation_statements"], username, password, now + ttl + 5)
        lid = "%s/%s" % (req.path.rstrip("/"), rand62(24))
        lease = st.Lease(id=lid, path=req.path, mount=m, role_name=name, role=dict(role),
                         conn_name=role["db_name"], username=username, token_id=req.token.id, issue_time=now,
                         expire_time=now + ttl, ttl=ttl, renewable=True)
        s.add_lease(lease)
        return envelope(req, {"username": username, "password": password}, lease_id=lid, renewable=True,
                        lease_duration=ttl)

    def db_connection(self, m, name):
        conn = self.s.db_conns.get((m, name))
        if conn is None:
            cfg = self.s.mount_data[m]["configs"].get(name)
            if cfg is None:
                raise VaultError(500, "could not find DB with name: %s" % name)
            conn = st.make_connection(name, cfg, self.s.sql_log)
            self.s.db_conns[(m, name)] = conn
        return conn

    def db_config_write(self, req, m, name):
        s, b = self.s, req.body
        configs = s.mount_data[m]["configs"]
        old = configs.get(name) or {}
        cfg = dict(old)
        for k, v in b.items():
            if k == "allowed_roles":
                cfg[k] = as_list(v)
            elif k == "verify_connection":
                cfg[k] = as_bool(v, True)
            elif k in ("root_rotation_statements",):
                cfg[k] = as_statements(v)
            else:
                cfg[k] = v
        if not cfg.get("plugin_name"):
            raise bad_request("empty plugin name")
        if cfg["plugin_name"] not in ("postgresql-database-plugin",):
            raise bad_request("error creating database object: invalid database version: "
                              "plugin %s not found in the catalog" % cfg["plugin_name"])
        if not cfg.get("connection_url"):
            raise bad_request("error creating database object: connection_url cannot be empty")
        for k in ("username", "password"):
            if "{{" in str(cfg.get(k, "")):
                raise bad_request("error creating database object: %s cannot contain the template "
                                  "variables" % k)
        conn = st.make_connection(name, cfg, s.sql_log)
        if cfg.get("verify_connection", True):
            try:
                conn.verify()
            except Exception as e:  # noqa: BLE001
                conn.close()
                raise bad_request("error creating database object: error verifying connection: %s"
                                  % str(e).strip().replace(str(cfg.get("password", "\0")), "***"))
        prev = s.db_conns.pop((m, name), None)
        if prev:
            prev.close()
        s.db_conns[(m, name)] = conn
        cfg.pop("verify_connection", None) if False else None
        configs[name] = cfg
        return no_content()

    # ---- kv -------------------------------------------------------------------------------------
    def kv1(self, req, m, rest):
        store = self.s.mount_data[m].setdefault("kv", {})
        op = req.op
        if op == "list":
            prefix = rest + "/" if rest else ""
            keys = set()
            for k in store:
                if k.startswith(prefix):
                    tail = k[len(prefix):]
                    keys.add(tail.split("/", 1)[0] + ("/" if "/" in tail else ""))
            return list_resp(req, keys)
        if not rest:
            raise unsupported_op() if op != "read" else not_found()
        if op == "read":
            d = store.get(rest)
            if d is None:
                return not_found()
            ttl = KV_DEFAULT_TTL
            for k in ("ttl", "lease"):
                if k in d:
                    try:
                        ttl = parse_duration(d[k])
                    except VaultError:
                        pass
            return envelope(req, dict(d), lease_duration=ttl)
        if op == "update":
            store[rest] = dict(req.body)
            return no_content()
        if op == "delete":
            store.pop(rest, None)
            return no_content()
        raise unsupported_op()

    def kv2(self, req, m, rest):
        store = self.s.mount_data[m].setdefault("kv", {})
        op, b = req.op, req.body
        if rest == "config":
            if op == "read":
                return envelope(req, {"max_versions": 0, "cas_required": False, "delete_version_after": "0s"})
            return no_content()
        sec, _, key = rest.partition("/")

        def meta_of(e, v):
            ver = e["versions"][v]
            return {"created_time": rfc3339nano(ver["created"]), "custom_metadata": e.get("custom_metadata"),
                    "deletion_time": rfc3339nano(ver["deleted"]) if ver["deleted"] else "",
                    "destroyed": ver["destroyed"], "version": v}
        if sec == "data" and key:
            e = store.get(key)
            if op == "read":
                if e is None or not e["versions"]:
                    return not_found()
                v = as_int(req.query.get("version"), 0) or e["current"]
                ver = e["versions"].get(v)
                if ver is None:
                    return not_found()
                md = meta_of(e, v)
                if ver["deleted"] or ver["destroyed"]:
                    return envelope(req, {"data": None, "metadata": md}, status=404)
                return envelope(req, {"data": dict(ver["data"]), "metadata": md})
            if op in ("update", "patch"):
                data = b.get("data")
                if not isinstance(data, dict):
                    raise bad_request("no data provided")
                cas = (b.get("options") or {}).get("cas")
                cur = e["current"] if e else 0
                if cas is not None and as_int(cas) != cur:
                    raise bad_request("check-and-set parameter did not match the current version")
                if op == "patch":
                    if e is None or not e["versions"]:
                        return not_found()
                    data = dict(e["versions"][cur]["data"], **data)
                    data = {k: v for k, v in data.items() if v is not None}
                if e is None:
                    e = store[key] = {"versions": {}, "current": 0, "created": time.time(),
                                      "custom_metadata": None}
                e["current"] = cur + 1
                e["updated"] = time.time()
                e["versions"][cur + 1] = {"data": dict(data), "created": time.time(), "deleted": 0,
                                          "destroyed": False}
                return envelope(req, meta_of(e, cur + 1))
            if op == "delete":
                if e and e["current"] in e["versions"]:
                    e["versions"][e["current"]]["deleted"] = time.time()
                return no_content()
            raise unsupported_op()
        if sec in ("delete", "undelete", "destroy") and key:
            if op != "update":
                raise unsupported_op()
            e = store.get(key)
            vers = [as_int(x) for x in (b.get("versions") or [])]
            if not vers:
                raise bad_request("no version number provided")
            for v in vers:
                ver = e["versions"].get(v) if e else None
                if ver is None:
                    continue
                if sec == "delete":
                    ver["deleted"] = ver["deleted"] or time.time()
                elif sec == "undelete":
                    ver["deleted"] = 0
                else:
                    ver["destroyed"] = True
                    ver["data"] = {}
            return no_content()
        if sec == "metadata":
            if op == "list":
                prefix = key + "/" if key else ""
                keys = set()
                for k in store:
                    if k.startswith(prefix):
                        tail = k[len(prefix):]
                        keys.add(tail.split("/", 1)[0] + ("/" if "/" in tail else ""))
                return list_resp(req, keys)
            if not key:
                raise unsupported_path()
            e = store.get(key)
            if op == "read":
                if e is None:
                    return not_found()
                versions = {str(v): {"created_time": rfc3339nano(x["created"]),
                                     "deletion_time": rfc3339nano(x["deleted"]) if x["deleted"] else "",
                                     "destroyed": x["destroyed"]} for v, x in e["versions"].items()}
                return envelope(req, {"cas_required": False, "created_time": rfc3339nano(e["created"]),
                                      "current_version": e["current"], "custom_metadata": e.get("custom_metadata"),
                                      "delete_version_after": "0s", "max_versions": 0,
                                      "oldest_version": min(e["versions"]) if e["versions"] else 0,
                                      "updated_time": rfc3339nano(e.get("updated", e["created"])),
                                      "versions": versions})
            if op == "delete":
                store.pop(key, None)
                return no_content()
            if op == "update":
                if e is None:
                    e = store[key] = {"versions": {}, "current": 0, "created": time.time(), "custom_metadata": None}
                if "custom_metadata" in b:
                    e["custom_metadata"] = b["custom_metadata"]
                return no_content()
            raise unsupported_op()
        r = envelope(req, None, warnings=["Invalid path for a versioned K/V secrets engine. See the API docs for "
                                          "the appropriate API endpoints to use. If using the Vault CLI, use "
                                          "'vault kv get' for this operation."], status=404)
        return r
