"""vleased --check-config: a config is good only if the daemon can start with it."""
import os
import subprocess

from broker import VLEASED


def check(b):
    b.write_config()
    return subprocess.run([VLEASED, "--config", b.config_path, "--check-config"], capture_output=True, text=True)


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
