"""Bad input and hostile clients: named errors or a closed connection, and everyone else served."""
import json
import os
import resource
import socket
import subprocess
import time

from broker import PY, SRC
from localusers import as_user
from varlink import Connection, VarlinkError


def assert_still_serves(b):
    rc, c, err = b.get("vlbob", "db-reader")
    assert rc == 0, err


def test_malformed_messages_close_or_get_named_errors(make_broker):
    b = make_broker()
    for bad in (b"{not json}\0", b"[1,2,3]\0", b"\0", b'{"method":42}\0', b'{"parameters":{}}\0',
                b'{"method":"io.vlease.Broker.Get","bogus":1}\0', b'{"method":"a.b","more":"yes"}\0',
                b'{"method":"io.vlease.Broker.Get","parameters":{"name":"a\\u0000b"}}\0',
                b'\xff\xfe{"method":"x.y"}\0'):
        with Connection(b.socket) as c:
            c.send_raw(bad)
            assert c.closed_by_peer(), f"connection stayed open after {bad!r}"

    with Connection(b.socket) as c:
        for method, params, error, param in (
                ("io.vlease.Broker.Nope", None, "org.varlink.service.MethodNotFound", "method"),
                ("com.example.Nope", None, "org.varlink.service.InterfaceNotFound", "interface"),
                ("io.vlease.Broker.Get", None, "org.varlink.service.InvalidParameter", "parameter"),
                ("io.vlease.Broker.Get", {"name": 7}, "org.varlink.service.InvalidParameter", "parameter"),
                ("io.vlease.Broker.Get", {"name": "db-reader", "x": 1},
                 "org.varlink.service.InvalidParameter", "parameter"),
                ("io.vlease.Broker.Release", {"name": ["a"]}, "org.varlink.service.InvalidParameter",
                 "parameter")):
            try:
                c.call(method, params)
                raise AssertionError(f"{method} {params} succeeded")
            except VarlinkError as e:
                assert e.error == error, (method, params, e.error)
                assert param in e.parameters
        # The same connection still works after named errors.
        info = c.call("org.varlink.service.GetInfo")
        assert "io.vlease.Broker" in info["interfaces"]
        desc = c.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.vlease.Broker"})
        assert desc["description"].startswith("interface io.vlease.Broker")
        with open(os.path.join(SRC, "broker", "io.vlease.Broker.varlink")) as f:
            assert desc["description"] == f.read()

    # Over the size cap, and a message with no NUL that grows past it: closed.
    with Connection(b.socket) as c:
        c.send_raw(b'{"method":"io.vlease.Broker.Get","parameters":{"name":"' + b"a" * 200000 + b'"}}\0')
        assert c.closed_by_peer()
    # Pipelined calls are answered in order.
    with Connection(b.socket) as c:
        c.send_raw(b'{"method":"org.varlink.service.GetInfo"}\0{"method":"io.vlease.Broker.Nope"}\0')
        assert "interfaces" in c.recv_message()["parameters"]
        assert c.recv_message()["error"] == "org.varlink.service.MethodNotFound"
    assert_still_serves(b)
    assert b.proc.poll() is None


def test_stalled_half_message_delays_nobody(make_broker):
    b = make_broker(broker_section="request_timeout_sec = 2\n")
    stalled = Connection(b.socket)
    stalled.send_raw(b'{"method":"io.vlease.Broker.Get","param')
    t = time.monotonic()
    assert_still_serves(b)
    assert time.monotonic() - t < 5
    assert stalled.closed_by_peer(timeout=10), "a stalled partial request was never timed out"
    # An idle connection without a partial request is never timed out.
    idle = Connection(b.socket)
    assert not idle.closed_by_peer(timeout=3)
    assert idle.call("org.varlink.service.GetInfo")


FLOOD = r"""
import resource, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
socks, refused = [], 0
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        socks.append(s)
    except OSError:
        refused += 1
        s.close()
# Connections over the limit are accepted and closed at once by the broker: count them.
closed = 0
for s in socks:
    s.setblocking(False)
deadline = time.monotonic() + 10
pending = list(socks)
while pending and time.monotonic() < deadline:
    rest = []
    for s in pending:
        try:
            if s.recv(1) == b"":
                closed += 1
                continue
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
            continue
        rest.append(s)
    if len(rest) == len(pending) and closed >= n - 100:
        break
    pending = rest
    time.sleep(0.2)
print(refused + closed, flush=True)
sys.stdin.read()        # hold the rest open until the test is done
"""


def test_connection_flood_by_one_user_spares_others(make_broker, tmp_path):
    b = make_broker(broker_section="max_connections_per_uid = 64\n")
    script = __import__("pathlib").Path(b.dir) / "flood.py"
    script.write_text(FLOOD)

    def raise_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    flood = subprocess.Popen(as_user("vlcarol", [PY, str(script), b.socket, "10000"]),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=raise_nofile)
    try:
        turned_away = int(flood.stdout.readline())
        assert turned_away >= 10000 - 64, f"only {turned_away} of 10000 connections refused"
        t = time.monotonic()
        for _ in range(5):
            assert_still_serves(b)
        assert time.monotonic() - t < 10, "other users' gets slowed by the flood"
    finally:
        flood.stdin.close()
        flood.wait(30)
    assert_still_serves(b)


REQUEST_FLOOD = r"""
import select, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
batch = b'{"method":"org.varlink.service.GetInfo"}\0' * 512
conns = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    conns.append([s, b""])
print("flooding", flush=True)
answers = 0
while True:
    r, w, _ = select.select([c[0] for c in conns] + [sys.stdin], [c[0] for c in conns], [], 1)
    if sys.stdin in r:
        break
    for c in conns:
        if c[0] in r:
            answers += c[0].recv(1 << 20).count(b"\0")
        if c[0] in w:
            if not c[1]:
                c[1] = batch
            try:
                c[1] = c[1][c[0].send(c[1]):]
            except BlockingIOError:
                pass
print(answers, flush=True)
"""


def test_a_request_flood_on_open_connections_does_not_starve_new_ones(make_broker):
    """A user keeping the broker busy by pipelining calls on open connections does not starve new
    clients of another user (a login, a unit starting): the listening socket gets its turn, and so
    do Vault's answers, which wait below answered connections (a first Get's read, renewals)."""
    b = make_broker()
    script = __import__("pathlib").Path(b.dir) / "request_flood.py"
    script.write_text(REQUEST_FLOOD)
    flood = subprocess.Popen(as_user("vlcarol", [PY, str(script), b.socket, "8"]),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert flood.stdout.readline().strip() == "flooding"
        t = time.monotonic()
        for _ in range(5):
            r = b.vlease("vlbob", "status")
            assert r.returncode == 0, r.stderr
        rc, cred, err = b.get("vlbob", "db-reader")     # not cached: answered once Vault's answer is in
        assert rc == 0, err
        elapsed = time.monotonic() - t
    finally:
        flood.stdin.write("stop\n")
        flood.stdin.close()
        answered = int(flood.stdout.readline())
        flood.wait(30)
    assert answered > 10000, f"the flood got only {answered} answers: it did not load the broker"
    assert elapsed < 10, f"5 new connections and a Vault read took {elapsed:.1f}s under the flood"
    assert_still_serves(b)


def test_a_half_closed_connection_gets_every_answer_then_the_end(make_broker):
    """A client that sends its last calls and shuts down its writing side (as a shell pipe does) gets
    every answer, then the end of the stream, also on a connection that has been answered before:
    the FIN that comes with the calls raises no epoll edge of its own."""
    b = make_broker()
    conns = []
    for before in (0, 1, 2, 2, 2):
        c = Connection(b.socket)
        for _ in range(before):         # answered calls first: then the connection is served in batches
            c.call("org.varlink.service.GetInfo")
        conns.append((before, c))
    for _, c in conns:
        c.send_raw(b'{"method":"org.varlink.service.GetInfo"}\0' * 5)
        c.sock.shutdown(socket.SHUT_WR)
    for before, c in conns:
        n = 0
        try:
            while c.recv_message() is not None:
                n += 1
        except socket.timeout:
            raise AssertionError(f"no end of stream after {n} answers (connection answered {before} times before)")
        assert n == 5
        c.close()
    assert_still_serves(b)


def test_out_of_file_descriptors_pauses_accepting(make_broker):
    """At EMFILE the listening socket is paused, not spun on: no log flood, service resumes."""
    b = make_broker()
    subprocess.run(["prlimit", f"--pid={b.proc.pid}", "--nofile=48:48"], check=True)
    log_before = len(b.log().splitlines())
    conns = []
    for _ in range(80):                 # root's allowance is far above the fd limit
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(b.socket)             # queued in the backlog even when accept() fails
        conns.append(s)
    cpu0 = cpu_seconds(b.proc.pid)
    time.sleep(2)                       # measuring a rate over a fixed window, not waiting for an event
    cpu = cpu_seconds(b.proc.pid) - cpu0
    lines = b.log().splitlines()[log_before:]
    accept_errors = [line for line in lines if "Failed to accept" in line]
    assert 1 <= len(accept_errors) <= 20, f"{len(accept_errors)} accept errors logged in 2 s"
    assert cpu < 0.5, f"vleased used {cpu:.2f}s of CPU in 2 s while out of file descriptors"
    for s in conns:
        s.close()
    from broker import wait_for
    wait_for(lambda: b.get("vlbob", "db-reader")[0] == 0, 10, interval=0.3, what="service after EMFILE")


def test_sighup_does_not_kill(make_broker):
    b = make_broker()
    b.proc.send_signal(__import__("signal").SIGHUP)
    assert_still_serves(b)
    assert b.proc.poll() is None
    assert "SIGHUP" in b.log()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
