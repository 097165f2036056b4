"""vleased --check-config: a config is good only if the daemon can start with it."""
import os
import subprocess

from broker import VLEASED


def check(b, env=None, config=None):
    """vleased --check-config; stderr lines read "vleased: LEVEL: ..." (no journald prefixes)"""
    b.write_config()
    env = {**{k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}, **(env or {})}
    return subprocess.run([VLEASED, "--config", config or b.config_path, "--check-config"], capture_output=True,
                          text=True, env=env, timeout=30)


def line_of(path, text):
    with open(path) as f:
        return next(i for i, line in enumerate(f, 1) if line.rstrip("\n") == text)


def test_check_config_reads_the_login_secrets(make_broker):
    b = make_broker(start=False)
    r = check(b)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout

    os.chmod(os.path.join(b.dir, "secret_id"), 0o644)
    r = subprocess.run([VLEASED, "--config", b.config_path, "--check-config"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "0644" in r.stderr or "readable" in r.stderr

    b.secrets["secret_id"] = None
    os.unlink(os.path.join(b.dir, "secret_id"))
    r = check(b)
    assert r.returncode == 1
    assert "secret_id" in r.stderr


def test_unknown_user_warning_is_readable(make_broker):
    b = make_broker(start=False, credentials="\n[credential db-reader]\npath = database/creds/reader\n"
                                              "allow_users = vlalice vlnosuchuser\n")
    r = check(b)
    assert r.returncode == 0, r.stderr
    warn = [line for line in r.stderr.splitlines() if "vlnosuchuser" in line]
    assert len(warn) == 1 and "ignored' ignored" not in warn[0], r.stderr


def test_check_config_names_an_error_once(make_broker):
    b = make_broker(start=False, credentials="\n[credential db-reader]\npath = database/creds/reader\n"
                                              "allow_users = vlalice\nallow_users = vlbob\npath = database/creds/other\n")
    r = check(b)
    assert r.returncode == 1
    first, second = line_of(b.config_path, "path = database/creds/reader"), line_of(b.config_path, "path = database/creds/other")
    assert r.stderr.splitlines() == [f"vleased: error: {b.config_path}:{second}: duplicate key 'path' in "
                                     f"[credential db-reader] (first set on line {first})"], r.stderr

    # the login secrets' errors too
    b.config = b.config.replace("path = database/creds/other\n", "")
    b.write_config()
    os.chmod(os.path.join(b.dir, "secret_id"), 0o644)
    r = check(b)
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1 and "(mode 0644)" in r.stderr, r.stderr


def test_config_not_a_regular_file(make_broker):
    b = make_broker(start=False)
    fifo = os.path.join(b.dir, "fifo.conf")
    os.mkfifo(fifo)
    for path, what in ((b.dir, "is a directory, not a regular file"), ("/dev/zero", "not a regular file"),
                       (fifo, "not a regular file")):
        r = check(b, config=path)       # a FIFO used to block in open() for ever
        assert r.returncode == 1
        assert r.stderr.splitlines() == [f"vleased: error: {path}: {what}"], r.stderr

    # a drop-in is refused the same way, not skipped
    os.mkdir(b.config_path + ".d", 0o755)
    os.mkfifo(b.config_path + ".d/50-fifo.conf")
    r = check(b)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f"vleased: error: {b.config_path}.d/50-fifo.conf: not a regular file"], r.stderr


def test_bad_log_level_warns_and_uses_the_default(make_broker):
    b = make_broker(start=False)
    r = check(b, env={"VLEASED_LOG_LEVEL": "foo"})
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["vleased: warning: Invalid $VLEASED_LOG_LEVEL 'foo' (expected 0-7 or debug), "
                                     "using the default 6 (info)."], r.stderr
    for good in ("debug", "7", "0", ""):
        r = check(b, env={"VLEASED_LOG_LEVEL": good})
        assert r.returncode == 0 and "VLEASED_LOG_LEVEL" not in r.stderr, (good, r.stderr)

    # a bad value leaves the default, info: "Ready" (info) is logged, "Listening on" (debug) is not
    b.env = {"VLEASED_LOG_LEVEL": "foo"}
    b.start()
    b.stop()
    log = b.log()
    assert "Invalid $VLEASED_LOG_LEVEL 'foo'" in log
    assert "Ready, Vault at" in log and "Listening on" not in log, log
