"""Emulates systemd's LoadCredential= client for tests: bind the abstract address
"\\0<hex>/unit/<unit>/<id>", connect to the credentials socket, shutdown(SHUT_WR), read to EOF
(stopping, like systemd, once more than 1 MiB arrived).

As a program: credclient.py SOCKET UNIT ID [CGROUP_DIR] [--hold]
  CGROUP_DIR: a cgroup2 directory to move this process into first (a stand-in for the unit's cgroup).
  --hold: after reading, wait for a line on stdin before exiting (keeps the cgroup populated).
Prints one JSON line: {"size": N, "data": "..." (first 4 KiB), "error": null or "..."}.
"""
import json
import os
import secrets
import socket
import sys

LIMIT = 1024 * 1024


def fetch(sock_path, unit, cred_id, bind=True, timeout=30):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if bind:
            s.bind(b"\0" + ("%x/unit/%s/%s" % (secrets.randbits(64) or 1, unit, cred_id)).encode())
        s.connect(sock_path)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while len(data) <= LIMIT:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def main(argv):
    sock_path, unit, cred_id = argv[1:4]
    rest = argv[4:]
    hold = "--hold" in rest
    rest = [a for a in rest if a != "--hold"]
    if rest:
        with open(os.path.join(rest[0], "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    out = {"size": 0, "data": "", "error": None}
    try:
        data = fetch(sock_path, unit, cred_id)
        out["size"] = len(data)
        out["data"] = data[:4096].decode(errors="replace")
    except OSError as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(out), flush=True)
    if hold:
        sys.stdin.readline()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
