"""A minimal varlink client for tests: NUL-framed JSON over AF_UNIX (see reference/varlink.md).

Run as a script it makes one call and prints the reply as JSON, so a test can make a call as another
local user: `setpriv --reuid=alice ... /usr/bin/python3 varlink.py SOCKET METHOD '{"name":"x"}'`.
"""
import json
import socket
import sys


class VarlinkError(Exception):
    def __init__(self, error, parameters):
        super().__init__(f"{error} {parameters}")
        self.error = error
        self.parameters = parameters or {}


class Connection:
    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def recv_message(self):
        """Returns one reply object, or None when the broker closed the connection."""
        while b"\0" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method, parameters=None):
        """Makes one call; returns the reply parameters or raises VarlinkError."""
        msg = {"method": method}
        if parameters:
            msg["parameters"] = parameters
        self.send_raw(json.dumps(msg).encode() + b"\0")
        reply = self.recv_message()
        if reply is None:
            raise ConnectionError("broker closed the connection")
        if "error" in reply:
            raise VarlinkError(reply["error"], reply.get("parameters"))
        return reply.get("parameters", {})

    def closed_by_peer(self, timeout=5.0):
        """True when the peer closes the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


if __name__ == "__main__":
    path, method = sys.argv[1], sys.argv[2]
    params = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    with Connection(path) as c:
        try:
            print(json.dumps({"parameters": c.call(method, params)}))
        except VarlinkError as e:
            print(json.dumps({"error": e.error, "parameters": e.parameters}))
