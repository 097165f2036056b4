"""HTTP layer: /v1 routing, envelopes and errors, the fault switches, the request log, main()."""
import argparse
import json
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .api import Api, Req, Resp
from .state import State, reaper_loop
from .util import VaultError, multierr

CONTROL = "sys/vaultdev/"


class Logger:
    def __init__(self, path=None):
        self.f = open(path, "a", buffering=1) if path else None
        self.lock = threading.Lock()

    def __call__(self, line):
        line = "vaultdev: " + line
        with self.lock:
            print(line, file=sys.stderr, flush=True)
            if self.f:
                self.f.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vaultdev"
    sys_version = ""

    def log_message(self, fmt, *args):  # silence the default access log
        pass

    def setup(self):
        super().setup()
        # Go sets TCP_NODELAY on every TCP connection, so Vault does
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # every method goes through one entry point
    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_LIST = do_HEAD = do_PATCH = do_GET

    def do_OPTIONS(self):
        self.dispatch()

    # ---- plumbing -------------------------------------------------------------------------------
    def send(self, status, body=None, headers=None, raw=None, content_type="application/json"):
        st = self.server.state
        payload = b""
        if raw is not None:
            payload = raw.encode() if isinstance(raw, str) else raw
        elif body is not None:
            body = dict(body)
            mt = body.pop("_mount_type", None)
            if mt and st.faults.get("vault_flavour", "vault") == "vault":
                body["mount_type"] = mt
            payload = json.dumps(body).encode()
        self.send_response(status)
        if status != 204 and (body is not None or raw is not None):
            self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        ns = self.headers.get("X-Vault-Namespace")
        if ns:
            self.send_header("X-Vault-Namespace", ns)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)) if status not in (204, 304) else "0")
        # Head and body in one write, as Go's net/http (Vault) sends a small answer. Written apart, the
        # body waited for the client's delayed ACK of the head (Nagle): 40 ms on a reused connection.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and status not in (204, 304):
            self._headers_buffer.append(payload)
        self.flush_headers()

    def read_body(self):
        limit = 32 * 1024 * 1024
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > limit:
                    self.close_connection = True
                    raise VaultError(413, "http: request body too large")
        n = int(self.headers.get("Content-Length") or 0)
        if n > limit:
            self.close_connection = True
            raise VaultError(413, "http: request body too large")
        return self.rfile.read(n) if n else b""

    def drop(self):
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def token_from_req(self):
        tok = self.headers.get("X-Vault-Token")
        if not tok:
            auth = self.headers.get("Authorization") or ""
            if auth.startswith("Bearer "):
                tok = auth[len("Bearer "):]
        return tok or None

    # ---- main entry -----------------------------------------------------------------------------
    def dispatch(self):
        t0 = time.time()
        srv = self.server
        st = srv.state
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        raw_token = self.token_from_req()
        status, ident, lpath = 0, None, parsed.path
        try:
            body_bytes = self.read_body()
        except VaultError as e:
            self.send(e.status, {"errors": e.messages})
            return
        if not parsed.path.startswith("/v1/"):
            self.send(404, {"errors": []})
            srv.log("%s %s 404 - %.1fms" % (self.command, parsed.path, (time.time() - t0) * 1000))
            return
        path = urllib.parse.unquote(parsed.path[len("/v1/"):])
        lpath = path
        if path.startswith(CONTROL) or path.rstrip("/") + "/" == CONTROL:
            self.control(path[len(CONTROL):], query, body_bytes, raw_token, t0)
            return
        resp, dropped = None, False
        with st.lock:
            f = st.faults
            latency = f.get("latency_ms") or 0
            tok = st.lookup_token(raw_token)
            ident = tok.identity() if tok else None
        if latency:
            time.sleep(latency / 1000.0)
        with st.lock:
            f = st.faults
            if f.get("drop_next"):
                f["drop_next"] -= 1
                dropped = True
            elif f.get("fail_next") and f["fail_next"].get("count", 0) > 0:
                fn = f["fail_next"]
                fn["count"] -= 1
                resp = ("raw", int(fn.get("status", 502)), fn.get("body", "<html><body>502 Bad Gateway</body></html>"),
                        fn.get("content_type", "text/html"))
                if fn["count"] <= 0:
                    f["fail_next"] = None
            elif f.get("ratelimit_next") and f["ratelimit_next"].get("count", 0) > 0:
                rl = f["ratelimit_next"]
                rl["count"] -= 1
                resp = Resp(429, {"errors": ['request path "%s": rate limit quota exceeded' % path]},
                            {"Retry-After": str(rl.get("retry_after", 1))})
                if rl["count"] <= 0:
                    f["ratelimit_next"] = None
            elif f.get("require_request_header") and not self.headers.get("X-Vault-Request"):
                resp = Resp(412, {"errors": ['missing "X-Vault-Request" header']})
        if dropped:
            status = 0
        elif isinstance(resp, tuple):
            status = resp[1]
        else:
            if resp is None:
                resp = self.logical(path, query, body_bytes, raw_token)
            status = resp.status
        # record before replying, so a client that has its answer always finds its request in the log
        dt = (time.time() - t0) * 1000
        with st.lock:
            st.requests.append({"time": t0, "method": self.command, "path": lpath, "status": status,
                                "display_name": ident["display_name"] if ident else None,
                                "policies": ident["policies"] if ident else None,
                                "accessor": ident["accessor"] if ident else None,
                                "entity": ident["entity"] if ident else None})
        srv.log("%s %s %s %s %.1fms" % (self.command, lpath, status if status else "dropped",
                                         ident["display_name"] if ident else "-", dt))
        if dropped:
            self.drop()
        elif isinstance(resp, tuple):
            self.send(resp[1], raw=resp[2], content_type=resp[3])
        else:
            self.send(resp.status, resp.body, resp.headers)

    def logical(self, path, query, body_bytes, raw_token):
        st = self.server.state
        if path.rstrip("/") == "sys/health":
            return self.health(query)
        with st.lock:
            if st.faults.get("sealed"):
                return Resp(503, {"errors": ["Vault is sealed"]})
        m = self.command
        if m == "GET" and query.get("list") in ("true", "1"):
            m = "LIST"
        op = {"GET": "read", "LIST": "list", "POST": "update", "PUT": "update", "DELETE": "delete",
              "PATCH": "patch", "HEAD": "read"}.get(m)
        if op is None:
            return Resp(405, {"errors": [multierr("unsupported operation")]})
        if m == "PATCH" and self.headers.get("Content-Type", "").split(";")[0] != "application/merge-patch+json":
            return Resp(415, {"errors": ["PATCH requires Content-Type application/merge-patch+json"]})
        try:
            body = {}
            text = body_bytes.decode("utf-8", "replace").strip()
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if text:
                if ctype == "application/x-www-form-urlencoded" and text[0] not in "{[":
                    body = dict(urllib.parse.parse_qsl(text))
                else:
                    try:
                        body = json.loads(text)
                    except ValueError as e:
                        raise VaultError(400, "failed to decode JSON input: %s" % e)
                    if not isinstance(body, dict):
                        raise VaultError(400, "failed to decode JSON input: not an object")
            if op == "read" and query:
                body = dict(query, **body)
            with st.lock:
                tok = st.lookup_token(raw_token)
                req = Req(m, op, path, body, query, tok, self.headers, raw_token)
                resp = self.server.api.handle(req)
                if tok is not None and tok.num_uses and tok.id in st.tokens:
                    tok.num_uses -= 1
                    if tok.num_uses == 0:
                        st.revoke_token(tok.id)
                return resp
        except VaultError as e:
            return Resp(e.status, {"errors": e.messages})
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            return Resp(500, {"errors": ["internal error: %s" % e]})

    def health(self, query):
        st = self.server.state
        sealed = st.faults.get("sealed")
        body = {"initialized": True, "sealed": bool(sealed), "standby": False, "performance_standby": False,
                "replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
                "server_time_utc": int(time.time()), "version": "1.17.0-vaultdev"}
        try:
            if sealed:
                code = int(query.get("sealedcode", 503))
            else:
                body["cluster_name"] = "vaultdev"
                body["cluster_id"] = self.server.cluster_id
                code = int(query.get("activecode", 200))
        except ValueError:
            return Resp(400, {"errors": []})
        return Resp(code, body)

    # ---- fault and inspection API ---------------------------------------------------------------
    def control(self, sub, query, body_bytes, raw_token, t0):
        st = self.server.state
        sub = sub.strip("/")
        with st.lock:
            tok = st.lookup_token(raw_token)
            if tok is None or "root" not in tok.policies:
                self.send(403, {"errors": ["permission denied"]})
                return
            try:
                body = json.loads(body_bytes or b"{}")
            except ValueError as e:
                self.send(400, {"errors": ["failed to decode JSON input: %s" % e]})
                return
            env = lambda d: {"request_id": "", "lease_id": "", "renewable": False, "lease_duration": 0,  # noqa
                             "data": d, "wrap_info": None, "warnings": None, "auth": None}
            m = self.command
            if sub == "faults":
                if m == "GET":
                    self.send(200, env(json.loads(json.dumps(st.faults))))
                elif m in ("POST", "PUT"):
                    known = set(st.faults)
                    bad = [k for k in body if k not in known]
                    if bad:
                        self.send(400, {"errors": ["unknown fault keys: %s" % ", ".join(sorted(bad))]})
                        return
                    for k, v in body.items():
                        if k == "vault_flavour" and v not in ("vault", "openbao"):
                            self.send(400, {"errors": ["vault_flavour must be vault or openbao"]})
                            return
                        st.faults[k] = dict(v) if isinstance(v, dict) else v
                    self.send(200, env(json.loads(json.dumps(st.faults))))
                elif m == "DELETE":
                    st.reset_faults()
                    self.send(204)
                else:
                    self.send(405, {"errors": [multierr("unsupported operation")]})
            elif sub == "requests":
                if m == "GET":
                    pp = query.get("path_prefix")
                    reqs = [dict(r) for r in st.requests if not pp or r["path"].startswith(pp)]
                    self.send(200, env({"requests": reqs}))
                elif m == "DELETE":
                    st.requests.clear()
                    self.send(204)
                else:
                    self.send(405, {"errors": [multierr("unsupported operation")]})
            elif sub == "sql":
                if m == "GET":
                    self.send(200, env({"statements": list(st.sql_log)}))
                elif m == "DELETE":
                    st.sql_log.clear()
                    self.send(204)
                else:
                    self.send(405, {"errors": [multierr("unsupported operation")]})
            else:
                self.send(404, {"errors": []})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout)):
            return  # a client (or a drop_next fault) went away: not worth a traceback
        super().handle_error(request, client_address)
    allow_reuse_address = True
    request_queue_size = 128


def main(argv=None):
    ap = argparse.ArgumentParser(prog="vaultdev", description="Vault-compatible dev server for tests")
    ap.add_argument("--listen", default="127.0.0.1:8200")
    ap.add_argument("--root-token", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--log-file")
    a = ap.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    log = Logger(a.log_file)
    state = State(a.root_token, log)
    srv = Server((host, int(port)), Handler)
    srv.state, srv.api, srv.log = state, Api(state), log
    import uuid
    srv.cluster_id = str(uuid.uuid4())
    scheme = "http"
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        scheme = "https"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reaper = threading.Thread(target=reaper_loop, args=(state, stop), daemon=True)
    reaper.start()
    serve = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    serve.start()
    h, p = srv.server_address[:2]
    log("listening on %s://%s:%d" % (scheme, h, p))
    while not stop.wait(0.2):
        pass
    log("shutting down")
    srv.shutdown()
    srv.server_close()
    reaper.join(2)
    with state.lock:
        for c in state.db_conns.values():
            c.close()
    return 0
