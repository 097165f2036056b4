"""Nothing goes into the host's /usr, /etc, /run or /var, and the host's /tmp survives."""
import os

from systemtest import DESTDIR


def test_host_untouched(system):
    """Power the session's container off, then compare the host with the snapshot taken before boot:
    /run/systemd, /run/vlease, /var/lib/systemd, /etc/systemd/system, the install directories under
    /usr, /etc and /var, no file of the build installed on the host, the /tmp canary intact."""
    system.shutdown()
    assert not os.path.exists(system.snapshot.canary + ".gone")
    diffs = system.snapshot.differences()
    assert diffs == [], "\n".join(diffs)
    # The harness's own traces are gone too: cgroup and scratch directory.
    assert not [d for d in os.listdir("/sys/fs/cgroup/unified") if d.startswith("vlt-")]
    assert not os.path.exists(os.path.join(os.path.dirname(DESTDIR), "systemd-ns"))
    assert os.path.exists("/run/systemd/nspawn") is False
