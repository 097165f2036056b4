"""ACL policies: HCL or JSON `path "glob" { capabilities = [...] }`, Vault's matching rules."""
import json
import re

from .util import VaultError

CAPS = {"create", "read", "update", "delete", "list", "sudo", "deny", "patch", "subscribe"}

DEFAULT_POLICY = '''
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/capabilities-self" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "sys/renew" { capabilities = ["update"] }
path "sys/wrapping/wrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
path "cubbyhole/*" { capabilities = ["create", "read", "update", "delete", "list"] }
'''

_TOKEN_RE = re.compile(r'\s*(#[^\n]*|//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_\-]*|-?\d+|[{}\[\]=,])', re.S)


def _tokenize(text):
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise ValueError("unexpected input at offset %d" % pos)
        tok = m.group(1)
        pos = m.end()
        if tok.startswith("#") or tok.startswith("//") or tok.startswith("/*"):
            continue
        out.append(tok)
    return out


def _parse_hcl(text):
    """Parse the subset of HCL used by policies into {pattern: {key: value}}."""
    toks = _tokenize(text)
    i = 0
    rules = []

    def expect(t):
        nonlocal i
        if i >= len(toks) or toks[i] != t:
            raise ValueError("expected %r" % t)
        i += 1

    def value():
        nonlocal i
        t = toks[i]
        if t == "[":
            i += 1
            vals = []
            while toks[i] != "]":
                vals.append(value())
                if toks[i] == ",":
                    i += 1
            i += 1
            return vals
        if t == "{":
            return block()
        i += 1
        if t.startswith('"'):
            return json.loads(t)
        if re.fullmatch(r"-?\d+", t):
            return int(t)
        if t in ("true", "false"):
            return t == "true"
        return t

    def block():
        nonlocal i
        expect("{")
        d = {}
        while toks[i] != "}":
            key = toks[i]
            i += 1
            if toks[i] == "=":
                i += 1
            d[key.strip('"')] = value()
            if i < len(toks) and toks[i] == ",":
                i += 1
        i += 1
        return d

    while i < len(toks):
        kw = toks[i]
        i += 1
        if kw == "path":
            pat = json.loads(toks[i])
            i += 1
            rules.append((pat, block()))
        elif kw == "name":
            if toks[i] == "=":
                i += 1
            value()
        else:
            raise ValueError("unexpected keyword %r" % kw)
    return rules


def parse_policy(text):
    """Return a list of (pattern, set(capabilities)); raise VaultError 400 on bad input."""
    try:
        if text.strip().startswith("{"):
            obj = json.loads(text)
            paths = obj.get("path", {})
            if isinstance(paths, list):
                items = [(k, v) for d in paths for k, v in d.items()]
            else:
                items = list(paths.items())
            rules = []
            for pat, body in items:
                if isinstance(body, list):
                    body = body[0] if body else {}
                rules.append((pat, body))
        else:
            rules = _parse_hcl(text)
        out = []
        for pat, body in rules:
            caps = body.get("capabilities", [])
            if isinstance(body.get("policy"), str):  # legacy policy = "read"
                caps = {"read": ["read", "list"], "write": ["create", "read", "update", "delete", "list"],
                        "deny": ["deny"], "sudo": ["create", "read", "update", "delete", "list", "sudo"]}.get(body["policy"], [])
            caps = set(caps)
            bad = caps - CAPS
            if bad:
                raise ValueError('path "%s": invalid capability "%s"' % (pat, sorted(bad)[0]))
            out.append((pat, caps))
        return out
    except VaultError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VaultError(400, "failed to parse policy: %s" % e)


def _glob_match(pat, path):
    star = pat.endswith("*")
    p = pat[:-1] if star else pat
    rx = "".join("[^/]+" if c == "+" else re.escape(c) for c in p) + (".*" if star else "")
    return re.fullmatch(rx, path, re.S) is not None


def _priority(pat):
    """Sort key: bigger = more specific (Vault's policy path priority rules)."""
    first_wild = min([i for i, c in enumerate(pat) if c in "+*"] or [len(pat) + 1])
    ends_star = pat.endswith("*")
    plus = pat.count("+")
    return (first_wild, not ends_star, -plus, len(pat), pat)


def capabilities(policy_rules, path):
    """Union the rules of the given policies by pattern, then take the most specific match."""
    merged = {}
    for rules in policy_rules:
        for pat, caps in rules:
            merged.setdefault(pat, set()).update(caps)
    if path in merged and "*" not in path and "+" not in path:
        best = path
    else:
        matches = [p for p in merged if _glob_match(p, path)]
        if not matches:
            return set()
        best = max(matches, key=_priority)
    caps = merged[best]
    if "deny" in caps:
        return {"deny"}
    return caps
