"""System tests: the shipped units under a real systemd (PID 1 of a systemd-nspawn container).

The session builds the regular (non-sanitizer) tree in build/plain with --prefix=/usr, installs it
with `meson install --destdir build/plain-dest` and boots one container (tests/lib/systemd_ns.py) in
which that tree is laid over /usr, the shipped units sit in /etc/systemd/system and the test's
vleased.conf and AppRole secrets in /etc/vlease. vaultdev and PostgreSQL run on the host's loopback
(tests/conftest.py); the container shares the host's network namespace to reach them.

Needs root and systemd-container (tools/check installs it).
"""
import os
import shutil
import tempfile

import pytest

from systemtest import BUILD, DESTDIR_PARENT, SRC, System, _run


@pytest.fixture(scope="session", autouse=True)
def _need_root():
    if os.geteuid() != 0:
        pytest.skip("the system suite needs root (systemd-nspawn, cgroups, PostgreSQL)")
    if not os.access("/usr/bin/systemd-nspawn", os.X_OK):
        pytest.fail("systemd-nspawn missing: apt-get install systemd-container")


@pytest.fixture(scope="session")
def destdir():
    """The regular build (build/plain, --prefix=/usr), installed into build/plain-dest-XXXX: never
    into the host. Removed at the end of the session."""
    if not os.path.exists(os.path.join(BUILD, "build.ninja")):
        _run(["meson", "setup", BUILD, "--prefix=/usr", "--buildtype=debugoptimized"], cwd=SRC)
    _run(["ninja", "-C", BUILD])
    dest = tempfile.mkdtemp(prefix="plain-dest-", dir=DESTDIR_PARENT)
    os.chmod(dest, 0o755)
    try:
        _run(["meson", "install", "-C", BUILD, "--destdir", dest, "--no-rebuild", "--quiet"])
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)


@pytest.fixture(scope="session")
def system(destdir, vaultdev, pg):
    s = System(destdir, vaultdev, pg)
    try:
        s.start()
    except BaseException:
        s.shutdown()
        if s.snapshot:
            s.snapshot.close()
        raise
    yield s
    s.shutdown()
    s.snapshot.close()


@pytest.fixture(scope="session")
def container(system):
    if system.container is None:
        pytest.fail("the container was already powered off")
    return system.container
