"""[broker] idle_exit_sec: with no leases and no connections for that long the broker exits 0 (under
systemd the socket unit starts it again on the next connection); a held lease or an open connection
keeps it running."""
import os
import socket
import time

from broker import wait_for


def exited_cleanly(b, timeout):
    rc = b.proc.wait(timeout)
    b.logf.close()
    assert rc == 0, b.log()
    assert not b.sanitizer_reports()
    b.proc = None
    return True


def test_idle_exit_without_leases(make_broker):
    b = make_broker(broker_section="idle_exit_sec = 1")
    exited_cleanly(b, 15)
    assert "Idle with no leases and no connections: exiting." in b.log()


def test_lease_and_connection_keep_it_running(make_broker, pg):
    b = make_broker(broker_section="idle_exit_sec = 1\nidle_release_sec = 3")
    rc, cred, err = b.get("vlalice", "db-reader")
    assert rc == 0, err
    t0 = time.monotonic()
    # a connection held open (like a PAM session's) keeps it too, after the lease is gone
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(b.socket)
    wait_for(lambda: not pg.role_exists(cred["data"]["username"]), 15, what="the idle release")
    assert time.monotonic() - t0 >= 2.5
    deadline = time.monotonic() + 2
    wait_for(lambda: time.monotonic() > deadline, 5, what="two more seconds")
    assert b.proc.poll() is None, "exited with a connection open"
    s.close()
    exited_cleanly(b, 15)
