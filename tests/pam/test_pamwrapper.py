"""libpamtest under pam_wrapper, with its own service directory (nothing installed in /etc/pam.d):
open/close session and authenticate against a running vleased with vaultdev, and every return code of
pam_vlease produced by its real cause."""
import os
import subprocess
import time

import pytest

from pamhelpers import PAM_MODULE, PAMTEST_RUN, asan_env, sanitizer_reports, scratch_dir, service_dir
from localusers import as_user
from poll import wait_for

PASSWORD = "pw-wrapper-vlpalice"


def _asan_runtime():
    out = subprocess.run(["ldd", PAMTEST_RUN], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "libasan.so" in line and "=>" in line:
            return line.split("=>")[1].split()[0]
    return None


def pamtest(tmp_path, module_args, user, *cases, control="required", password=PASSWORD, run_as=None,
            timeout=30):
    """Runs pamtest-run under pam_wrapper with a service 'vlease' made of pam_vlease lines for auth
    and session. Returns (exit status, {op: code name}, stderr with pam_wrapper's syslog lines)."""
    d = service_dir({
        "vlease": f"auth {control} {PAM_MODULE} {module_args}\n"
                  f"session {control} {PAM_MODULE} {module_args}\n",
        "other": "auth required pam_deny.so\nsession required pam_deny.so\n",
    })        # in a fresh world-readable temp dir: pamtest-run may run as another user
    env = dict(os.environ)
    preload = "libpam_wrapper.so"
    asan = _asan_runtime()
    if asan:
        preload = asan + ":" + preload        # the ASan runtime must come first
    logdir = scratch_dir("pamtest-log-")
    os.chmod(logdir, 0o777)
    env.update(asan_env(logdir, f"pamtest-{user}"))
    env.update({"LD_PRELOAD": preload, "PAM_WRAPPER": "1", "PAM_WRAPPER_SERVICE_DIR": d,
                "PAM_WRAPPER_DISABLE_DEEPBIND": "1", "PAM_WRAPPER_DEBUGLEVEL": "2",
                "PAMTEST_PASSWORD": password})
    r = subprocess.run(as_user(run_as, [PAMTEST_RUN, "vlease", user, *cases]), env=env, capture_output=True,
                       text=True, timeout=timeout)
    got = dict(line.split() for line in r.stdout.splitlines() if len(line.split()) == 2)
    reports = sanitizer_reports(logdir)
    assert not reports, "".join(open(p).read() for p in reports)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, got, r.stderr


@pytest.fixture
def userpass(vaultdev):
    vaultdev.write_policy("personal", 'path "database/creds/reader" { capabilities = ["read"] }\n')
    vaultdev.setup_userpass("vlpalice", PASSWORD, policies=["personal"])


def test_session_open_close_success(make_broker, tmp_path, users):
    b = make_broker()
    rc, got, err = pamtest(tmp_path, f"socket={b.socket}", "vlpalice", "open=PAM_SUCCESS", "close=PAM_SUCCESS")
    assert rc == 0, (got, err)
    assert "Session" in b.log() and "closed" in b.log()


def test_authenticate_success_and_wrong_password(make_broker, tmp_path, users, userpass):
    b = make_broker()
    rc, got, err = pamtest(tmp_path, f"socket={b.socket}", "vlpalice", "auth=PAM_SUCCESS", "setcred=PAM_SUCCESS")
    assert rc == 0, (got, err)
    rc, got, err = pamtest(tmp_path, f"socket={b.socket} debug", "vlpalice", "auth=PAM_AUTH_ERR",
                           password="not-the-password-42")
    assert rc == 0, (got, err)
    syslog = [line for line in err.splitlines() if "SYSLOG(" in line]
    assert syslog and not any("not-the-password-42" in line for line in syslog), syslog
    assert "not-the-password-42" not in b.log()
    assert "wrong user name or password" in err


def test_no_such_local_user(make_broker, tmp_path, users):
    b = make_broker()
    rc, got, err = pamtest(tmp_path, f"socket={b.socket}", "vlp-nobody-here", "auth=PAM_USER_UNKNOWN")
    assert rc == 0, (got, err)


def test_vault_unavailable(make_broker, vaultdev, tmp_path, users, userpass):
    b = make_broker()
    vaultdev.faults(sealed=True)
    rc, got, err = pamtest(tmp_path, f"socket={b.socket}", "vlpalice", "auth=PAM_AUTHINFO_UNAVAIL")
    vaultdev.reset_faults()
    assert rc == 0, (got, err)


def test_broker_unreachable(tmp_path, users):
    args = f"socket={tmp_path}/no-such-socket timeout=1"
    rc, got, err = pamtest(tmp_path, args, "vlpalice", "auth=PAM_AUTHINFO_UNAVAIL")
    assert rc == 0, (got, err)
    rc, got, err = pamtest(tmp_path, args, "vlpalice", "open=PAM_SESSION_ERR")
    assert rc == 0, (got, err)
    assert "Cannot reach vleased" in err


def test_broker_refuses(make_broker, tmp_path, users):
    b = make_broker()
    # not root: the broker refuses OpenSession and Login
    rc, got, err = pamtest(tmp_path, f"socket={b.socket}", "vlpbob", "open=PAM_SESSION_ERR", run_as="vlpbob")
    assert rc == 0, (got, err)
    rc, got, err = pamtest(tmp_path, f"socket={b.socket}", "vlpbob", "auth=PAM_AUTHINFO_UNAVAIL", run_as="vlpbob")
    assert rc == 0, (got, err)
    assert "PermissionDenied" in b.log() or "Permission denied" in b.log()
    # a user the broker does not know
    rc, got, err = pamtest(tmp_path, f"socket={b.socket}", "vlp-nobody-here", "open=PAM_SESSION_ERR")
    assert rc == 0, (got, err)
    assert "NoSuchUser" in err


class FakeServer:
    """A Unix socket server that records what it receives and never answers; once a connection has
    ended (or sent its first bytes), what it sent is in the data file and the count is one more."""

    def __init__(self, path, run_as=None):
        self.path = path
        self.data_file = path + ".data"
        code = ("import socket,sys,os\n"
                "s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1],0o777); s.listen(8)\n"
                "print('listening',flush=True)\n"
                "while True:\n"
                "    c,_=s.accept(); c.settimeout(5)\n"
                "    try:\n"
                "        d=c.recv(65536)\n"
                "    except OSError:\n"
                "        d=b''\n"
                "    open(sys.argv[2],'ab').write(d)\n"
                "    open(sys.argv[2]+'.n','a').write('x')\n")
        self.proc = subprocess.Popen(as_user(run_as, ["/usr/bin/python3", "-c", code, path, self.data_file]),
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "listening"

    def connections(self):
        try:
            return os.path.getsize(self.data_file + ".n")
        except OSError:
            return 0

    def received(self):
        try:
            with open(self.data_file, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def test_peer_not_root_or_vlease_gets_no_password(tmp_path, users):
    d = scratch_dir("fake-broker-")
    os.chmod(d, 0o777)
    srv = FakeServer(os.path.join(d, "sock"), run_as="vlpbob")
    try:
        rc, got, err = pamtest(tmp_path, f"socket={srv.path} timeout=2", "vlpalice", "auth=PAM_AUTHINFO_UNAVAIL")
        assert rc == 0, (got, err)
        rc, got, err = pamtest(tmp_path, f"socket={srv.path} timeout=2", "vlpalice", "open=PAM_SESSION_ERR")
        assert rc == 0, (got, err)
        assert "neither root nor user vlease" in err
        # each login connected once and hung up without a word: wait until the server has seen both end
        wait_for(lambda: srv.connections() >= 2, 10, what="the fake broker to see both connections end")
        assert srv.received() == b"", "the module sent something to an untrusted peer"
    finally:
        srv.stop()


def test_silent_broker_never_holds_the_login_longer_than_timeout(tmp_path, users):
    srv = FakeServer(str(tmp_path / "silent"))      # root, so the peer check passes, but it never answers
    try:
        t0 = time.monotonic()
        rc, got, err = pamtest(tmp_path, f"socket={srv.path} timeout=0.5", "vlpalice", "open=PAM_SESSION_ERR")
        took = time.monotonic() - t0
        assert rc == 0, (got, err)
        assert "timed out" in err
        # the whole pamtest-run process, startup included, well under a second
        assert took < 2.0, took
        t0 = time.monotonic()
        rc, got, err = pamtest(tmp_path, f"socket={srv.path} timeout=0.5", "vlpalice", "auth=PAM_AUTHINFO_UNAVAIL")
        assert rc == 0, (got, err)
        assert time.monotonic() - t0 < 2.0
    finally:
        srv.stop()


def test_unknown_argument_is_logged(make_broker, tmp_path, users):
    b = make_broker()
    rc, got, err = pamtest(tmp_path, f"socket={b.socket} frobnicate timeout=abc", "vlpalice",
                           "open=PAM_SUCCESS", "close=PAM_SUCCESS")
    assert rc == 0, (got, err)
    assert "Unknown module argument 'frobnicate'" in err
    assert "Invalid timeout= 'abc'" in err
