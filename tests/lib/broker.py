"""Runs the built vleased for a test and talks to it as real local users.

Every test that starts vleased stops it with SIGTERM, requires exit status 0 and fails on any
sanitizer report it left (DESIGN.md "Tests and benchmarks"): Broker.stop() asserts all three.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from localusers import as_user
from poll import wait_for  # noqa: F401  (re-exported for the suites)

SRC = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("VLEASE_BUILD_DIR", os.path.join(SRC, "build", "asan"))
VLEASED = os.path.join(BUILD, "broker", "vleased")
VLEASE = os.path.join(BUILD, "client", "vlease")
PY = "/usr/bin/python3"
POLICY = os.path.join(SRC, "packaging", "vault", "vleased-policy.hcl")


def approle_config(vault_addr, credentials, broker_section="", vault_extra=""):
    """vleased.conf text logging in with AppRole from {dir}/role_id and {dir}/secret_id (Broker writes
    them), then a [broker] section and the given [credential ...] sections."""
    return (f"[vault]\naddress = {vault_addr}\nauth = approle\nrole_id_file = {{dir}}/role_id\n"
            f"secret_id_file = {{dir}}/secret_id\n{vault_extra}\n\n[broker]\n{broker_section}\n{credentials}")


class Brokers:
    """The brokers one test made: stop_all() stops those still running (Broker.stop: SIGTERM, exit 0,
    no sanitizer report) and returns the failures, for the fixture to report."""

    def __init__(self):
        self.made = []

    def make(self, config, role_id, secret_id, start=True):
        b = Broker(config, role_id=role_id, secret_id=secret_id)
        self.made.append(b)
        return b.start() if start else b

    def stop_all(self):
        """Stops every broker; removes the directories of those that stopped cleanly (a failed one's
        logs and sanitizer reports stay for whoever investigates, and the error names the dir)."""
        errors = []
        for b in self.made:
            try:
                if b.proc is not None:
                    b.stop()
            except AssertionError as e:
                errors.append(f"{e}\n(kept: {b.dir})")
                continue
            b.remove()
        return errors


class Broker:
    """One vleased process with its own config, socket directory and logs.

    config: the text of vleased.conf. Use {vault_addr}, {dir} placeholders; the AppRole files
    {dir}/role_id and {dir}/secret_id are written by start() from role_id/secret_id.
    """

    def __init__(self, config, role_id=None, secret_id=None, token=None, env=None):
        self.dir = tempfile.mkdtemp(prefix="vleased-test-")
        os.chmod(self.dir, 0o755)
        self.sockdir = os.path.join(self.dir, "run")
        os.mkdir(self.sockdir, 0o755)
        self.socket = os.path.join(self.sockdir, "io.vlease.Broker")
        self.config_path = os.path.join(self.dir, "vleased.conf")
        self.config = config
        self.secrets = {"role_id": role_id, "secret_id": secret_id, "token": token}
        self.env = env or {}
        self.proc = None
        self.log_path = os.path.join(self.dir, "vleased.log")

    def write_config(self):
        for name, value in self.secrets.items():
            if value is not None:
                p = os.path.join(self.dir, name)
                with open(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                    f.write(value + "\n")
        with open(self.config_path, "w") as f:
            f.write(self.config.replace("{dir}", self.dir))

    def start(self, wait=True, args=()):
        self.write_config()
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("LISTEN_FDS", None)
        env["ASAN_OPTIONS"] = f"log_path={self.dir}/asan:detect_leaks=1:abort_on_error=0"
        env["UBSAN_OPTIONS"] = f"log_path={self.dir}/ubsan:print_stacktrace=1:halt_on_error=1"
        env.update(self.env)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([VLEASED, "--config", self.config_path, "--listen", self.sockdir, *args],
                                     stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf, env=env)
        if wait:
            wait_for(self._answers, 15, what="vleased to answer GetInfo")
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"vleased exited with {self.proc.returncode}:\n{self.log()}")
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(self.socket)
            s.sendall(b'{"method":"org.varlink.service.GetInfo"}\0')
            data = b""
            while b"\0" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                data += chunk
            s.close()
            return True
        except OSError:
            return False

    def sanitizer_reports(self):
        return [f for f in os.listdir(self.dir) if f.startswith(("asan", "ubsan"))]

    def stop(self, timeout=30):
        """SIGTERM; asserts exit status 0 and no sanitizer report."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"vleased did not exit within {timeout}s of SIGTERM:\n{self.log()}")
        self.logf.close()
        reports = self.sanitizer_reports()
        text = "".join(open(os.path.join(self.dir, r)).read() for r in reports)
        assert rc == 0, f"vleased exited with {rc}:\n{self.log()}\n{text}"
        assert not reports, f"sanitizer reports:\n{text}"
        self.proc = None

    def remove(self):
        """Deletes the broker's directory (config, login secrets, sockets, logs); it must be stopped."""
        assert self.proc is None
        shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def vlease(self, user, *args, timeout=60):
        """Runs the built vlease client as a local user; returns the CompletedProcess (text)."""
        return subprocess.run(as_user(user, [VLEASE, "--socket", self.socket, *args]),
                              capture_output=True, text=True, timeout=timeout)

    def get(self, user, name):
        """vlease get NAME --json as user: (exit code, credential dict or None, stderr)."""
        r = self.vlease(user, "get", name, "--json")
        cred = json.loads(r.stdout) if r.returncode == 0 else None
        return r.returncode, cred, r.stderr

    def call(self, user, method, params=None):
        """One raw varlink call as user; returns the reply object ({"parameters"} or {"error"})."""
        argv = [PY, os.path.join(SRC, "tests", "lib", "varlink.py"), self.socket, method]
        if params is not None:
            argv.append(json.dumps(params))
        r = subprocess.run(as_user(user, argv), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
