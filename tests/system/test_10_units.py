"""The shipped units, sysusers.d and tmpfiles.d entries: layout, verification, exposure score, and the
socket units under a real systemd."""
import os
import re
import stat
import subprocess

from systemtest import BUILD, UNITS

MAX_EXPOSURE = 2.0


def test_meson_install_layout(destdir):
    expect = [
        "lib/systemd/system/vleased.service",
        "lib/systemd/system/vleased.socket",
        "lib/systemd/system/vleased-credentials.socket",
        "usr/lib/sysusers.d/vlease.conf",
        "usr/lib/tmpfiles.d/vlease.conf",
        "usr/libexec/vleased",
        "usr/share/doc/vlease/vleased.conf.example",
        "usr/share/doc/vlease/vleased-policy.hcl",
    ]
    missing = [p for p in expect if not os.path.isfile(os.path.join(destdir, p))]
    assert not missing, missing
    with open(os.path.join(destdir, "lib/systemd/system/vleased.service")) as f:
        unit = f.read()
    assert "ExecStart=/usr/libexec/vleased\n" in unit
    assert "@libexecdir@" not in unit


def _private_run(argv):
    """Run argv in a private mount namespace with a tmpfs on /run/systemd: systemd-analyze writes
    /run/systemd/systemd-units-load, and the host's /run/systemd must stay untouched."""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                           'mount -n -t tmpfs -o mode=0755,size=1m vlease-analyze /run/systemd && exec "$@"',
                           "sh"] + argv, capture_output=True, text=True, timeout=60)


def test_security_exposure(destdir):
    """systemd 252's offline scoring of the configured vleased.service: exposure 2.0 or better."""
    service = os.path.join(BUILD, "packaging", "vleased.service")
    r = _private_run(["systemd-analyze", "security", "--offline=true", "--no-pager", service])
    m = re.search(r"Overall exposure level for vleased\.service: ([0-9.]+) (\w+)", r.stdout)
    assert m, r.stdout + r.stderr
    exposure = float(m.group(1))
    assert exposure <= MAX_EXPOSURE, r.stdout
    # --threshold is 10x the exposure: the same verdict from systemd-analyze's exit status.
    r = _private_run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                      "--threshold=%d" % int(MAX_EXPOSURE * 10), service])
    assert r.returncode == 0, r.stdout + r.stderr


def test_units_verify(container):
    r = container.run(["systemd-analyze", "verify", "--man=no"] + ["/etc/systemd/system/" + u for u in UNITS])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vleased" not in r.stderr, r.stderr


def test_shipped_units_with_dropins_only(container, destdir):
    """The container runs the installed unit files unchanged; the test's changes are drop-ins."""
    for u in UNITS:
        with open(os.path.join(destdir, "lib/systemd/system", u)) as f, \
                open(container.path("/etc/systemd/system/" + u)) as g:
            assert f.read() == g.read()
        assert container.unit_property(u, "FragmentPath") == "/etc/systemd/system/" + u
    assert container.unit_property("vleased.service", "DropInPaths") == \
        "/etc/systemd/system/vleased.service.d/50-system-test.conf"


def test_sysusers_and_tmpfiles_applied_at_boot(container):
    r = container.run(["getent", "passwd", "vlease"], check=True)
    name, _, uid, gid, gecos, home, shell = r.stdout.strip().split(":")
    assert int(uid) < 1000 and home == "/var/lib/vlease" and shell == "/usr/sbin/nologin"
    assert container.run(["getent", "group", "vlease"]).returncode == 0
    r = container.run(["stat", "-c", "%a %U %G", "/etc/vlease", "/etc/vlease/vleased.conf.d",
                       "/etc/vlease/role_id", "/etc/vlease/secret_id"], check=True)
    assert r.stdout.split("\n")[:4] == ["755 root root", "755 root root", "600 root root", "600 root root"]
    # The broker's user cannot read its own Vault secrets as files.
    r = container.run(["cat", "/etc/vlease/secret_id"], user="vlease")
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_enable_sockets(container):
    """Enabling the service enables both sockets (Also=); they listen while the service sleeps."""
    r = container.systemctl("enable", "vleased.service")
    assert "vleased.socket" in r.stdout + r.stderr and "vleased-credentials.socket" in r.stdout + r.stderr
    assert container.systemctl("is-enabled", "vleased.socket").stdout.strip() == "enabled"
    assert container.systemctl("is-enabled", "vleased-credentials.socket").stdout.strip() == "enabled"
    container.systemctl("start", "vleased.socket", "vleased-credentials.socket")
    for u in ("vleased.socket", "vleased-credentials.socket"):
        assert container.unit_property(u, "ActiveState") == "active", container.journal(u)
    assert container.unit_property("vleased.service", "ActiveState") == "inactive"
    assert container.unit_property("vleased.socket", "FileDescriptorName") == "varlink"
    assert container.unit_property("vleased-credentials.socket", "FileDescriptorName") == "credentials"

    def mode(p):
        st = os.lstat(container.path(p))
        return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid
    assert mode("/run/vlease") == (stat.S_IFDIR, 0o755, 0)
    assert mode("/run/vlease/io.vlease.Broker") == (stat.S_IFSOCK, 0o666, 0)
    assert mode("/run/vlease/credentials") == (stat.S_IFSOCK, 0o600, 0)
