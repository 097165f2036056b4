"""Real local users and groups for tests, made with useradd/groupadd and removed afterwards.

Names carry a `vlt` prefix so they never collide with the host's own accounts.
"""
import grp
import pwd
import subprocess


class LocalUsers:
    def __init__(self):
        self.users = []
        self.groups = []

    def group(self, name):
        try:
            grp.getgrnam(name)
        except KeyError:
            subprocess.run(["groupadd", name], check=True)
            self.groups.append(name)
        return grp.getgrnam(name).gr_gid

    def user(self, name, groups=()):
        try:
            pwd.getpwnam(name)
        except KeyError:
            cmd = ["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name]
            if groups:
                cmd[1:1] = ["-G", ",".join(groups)]
            subprocess.run(cmd, check=True)
            self.users.append(name)
        return pwd.getpwnam(name).pw_uid

    def cleanup(self):
        for u in self.users:
            subprocess.run(["userdel", u], check=False)
        for g in self.groups:
            subprocess.run(["groupdel", g], check=False)


def as_user(user, argv):
    """argv prefixed so that it runs with the user's uid, primary gid and supplementary groups."""
    if user is None or user == "root":
        return list(argv)
    return ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--init-groups",
            "--"] + list(argv)
