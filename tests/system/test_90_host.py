"""Nothing goes into the host's /usr, /etc, /run or /var, and the host's /tmp survives."""
import os



def test_host_untouched(system):
    """Power the session's container off, then compare the host with the snapshot taken before boot:
    /run/systemd, /run/vlease, /var/lib/systemd, /etc/systemd/system, the install directories under
    /usr, /etc and /var, no file of the build installed on the host, the /tmp canary intact."""
    system.shutdown()
    diffs = system.snapshot.differences()
    assert diffs == [], "\n".join(diffs)
    # nspawn powered the container off cleanly, and the harness's own traces are gone: its cgroup,
    # its scratch directory, nspawn's bookkeeping under /run/systemd.
    assert system.exit_status == 0, system.exit_status
    assert not os.path.exists(system.cgroup)
    assert not os.path.exists(system.scratch)
    assert not [n for n in os.listdir("/run/systemd") if n.startswith("nspawn")]
