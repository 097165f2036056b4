"""Small helpers: errors, durations, random strings, time formats."""
import base64
import datetime
import json
import re
import secrets
import string
import time

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
SYSTEM_MAX_TTL = 768 * 3600
SYSTEM_DEFAULT_TTL = 768 * 3600


class VaultError(Exception):
    """An error reply: status plus the strings for {"errors": [...]}."""

    def __init__(self, status, *messages):
        super().__init__(", ".join(messages))
        self.status = status
        self.messages = list(messages)


def multierr(msg):
    """Go multierror rendering of one error (what Vault's ACL denials look like)."""
    return "1 error occurred:\n\t* %s\n\n" % msg


def permission_denied():
    return VaultError(403, multierr("permission denied"))


def bad_request(msg):
    return VaultError(400, msg)


def rand62(n):
    return "".join(secrets.choice(BASE62) for _ in range(n))


def new_token():
    return "hvs." + rand62(24)


_DUR_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(v, field="duration"):
    """Seconds (int) from an int, a numeric string or a Go duration string ("1h30m")."""
    if v is None or v == "":
        return 0
    if isinstance(v, bool):
        raise bad_request("invalid %s" % field)
    if isinstance(v, (int, float)):
        return int(v)
    s = str(v).strip()
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    if s.endswith("d") and re.fullmatch(r"\d+d", s):
        return int(s[:-1]) * 86400
    pos, total = 0, 0.0
    for m in _DUR_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise bad_request('error converting input %s for field "%s": time: invalid duration "%s"' % (s, field, s))
    return int(total)


def fmt_duration(secs):
    """Go-style duration with zero parts dropped: 3600 -> 1h, 5400 -> 1h30m, 598 -> 9m58s."""
    secs = int(secs)
    if secs <= 0:
        return "0s"
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    out = ""
    if h:
        out += "%dh" % h
    if m:
        out += "%dm" % m
    if s:
        out += "%ds" % s
    return out


def rfc3339nano(ts):
    """RFC3339Nano in UTC (trailing zeros of the fraction dropped, as Go does)."""
    if ts is None:
        return None
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    frac = ("%06d" % dt.microsecond).rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"


def pg_expiration(ts):
    """Go layout 2006-01-02 15:04:05-0700 in the server's local zone."""
    return datetime.datetime.fromtimestamp(int(ts)).astimezone().strftime("%Y-%m-%d %H:%M:%S%z")


def as_list(v):
    """A list of strings from a JSON list or a comma-separated string."""
    if v is None:
        return []
    if isinstance(v, list):
        out = []
        for x in v:
            out.extend(as_list(x) if isinstance(x, str) and "," in x else [str(x)])
        return [x.strip() for x in out if str(x).strip()]
    return [x.strip() for x in str(v).split(",") if x.strip()]


def as_statements(v):
    """Statement lists as Vault's ParseArbitraryStringSlice takes them: list, JSON array string, base64, or ';'-separated."""
    if v is None:
        return []
    if isinstance(v, list):
        return [str(x) for x in v if str(x).strip()]
    s = str(v)
    try:
        dec = base64.b64decode(s, validate=True).decode("utf-8")
        if dec.strip():
            s = dec
    except Exception:
        pass
    if s.strip().startswith("["):
        try:
            arr = json.loads(s)
            if isinstance(arr, list):
                return [str(x) for x in arr if str(x).strip()]
        except ValueError:
            pass
    return [x.strip() for x in s.split(";") if x.strip()]


def as_bool(v, default=False):
    if v is None:
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    return str(v).strip().lower() in ("1", "true", "t", "yes", "y")


def as_int(v, default=0):
    if v is None or v == "":
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        raise bad_request("invalid integer value %r" % (v,))


def now():
    return time.time()
