"""A real systemd, booted as PID 1 of a throwaway container, for the system tests.

Variant "3d" of /work/shared/reference/systemd-in-tests.md: systemd-nspawn on the host's own /usr with
a tmpfs root (--volatile=yes), so everything the booted systemd writes (/etc, /var, /run, /tmp, the
journal, users made by sysusers) lives in the container's tmpfs and vanishes at poweroff:

    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 \\
    unshare --mount --propagation private -- sh -c 'mount -n -t tmpfs tmpfs /run/systemd && exec "$@"' sh \\
      systemd-nspawn -D / --volatile=yes --boot --register=no --keep-unit -M NAME \\
        --link-journal=no --console=read-only --overlay-ro=/usr:DESTDIR/usr:/usr \\
        --bind-ro=... -- systemd.firstboot=off

Precautions, each for a reason:
- the launcher first moves itself into its own cgroup /sys/fs/cgroup/unified/NAME (cgroup2, no
  controllers; the v1 hierarchies and the machine's own memory cgroup are left alone), and the
  container forces the unified hierarchy (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1);
- --register=no --keep-unit: there is no host systemd/machined/D-Bus to talk to;
- no --private-network, on purpose: the container reaches vaultdev and PostgreSQL on the host's
  127.0.0.1. nspawn then drops CAP_NET_ADMIN, so nothing inside can reconfigure the host network,
  and a "disable *" preset keeps the first boot's preset-all from enabling network services;
- nspawn's own bookkeeping (/run/systemd/nspawn*, nspawn-root) goes to a tmpfs on /run/systemd in a
  private mount namespace, so the host's /run/systemd is never written (mount -n: no /run/mount/utab);
- --link-journal=no: the container's journal never lands in the host's /var/log/journal;
- systemd.firstboot=off: otherwise the boot hangs in interactive systemd-firstboot;
- the project build comes from `meson install --destdir DESTDIR`, laid over the host's /usr inside
  the container only (read-only overlay); units go to the container's /etc/systemd/system, test
  configuration as read-only binds. Nothing is installed into the host's /usr, /etc, /run or /var;
- everything is driven with `nsenter -t LEADER -a ...` (machinectl/systemctl -M need a host bus);
- nspawn runs with PR_SET_PDEATHSIG=SIGTERM, so a killed test run still powers the container off;
- poweroff: SIGTERM to nspawn by PID (it powers the container off), wait with a deadline, SIGKILL by
  PID only if that fails, rmdir the cgroups depth-first, delete the scratch directory.

HostSnapshot records the host paths that a careless systemd would touch and asserts afterwards that
they are as they were.
"""
import ctypes
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from poll import wait_for

SRC = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NSPAWN = "/usr/bin/systemd-nspawn"
CGROUP_ROOT = "/sys/fs/cgroup/unified"
INNER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_FORBIDDEN_SCRATCH = ("/tmp", "/var/tmp", "/run", "/dev/shm")


_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option, arg):
    _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


class ContainerError(Exception):
    pass


def wait_until(predicate, timeout, what, interval=0.02):
    """Poll predicate() until it returns something true; raise ContainerError at the deadline."""
    return wait_for(predicate, timeout, interval=interval, what=what, exc=ContainerError)


def _children(pid):
    kids = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------------
# Host state


class HostSnapshot:
    """What the host looks like in the places a stray systemd would change.

    - the entry names directly under /run, /var/lib, /etc, /usr, /usr/lib, /usr/share/doc (none new);
    - full listings (name, type, mode, owner, size, mtime) of /run/systemd, /run/vlease,
      /var/lib/systemd and /etc/systemd/system;
    - the modification times of the /usr, /etc and /lib directories the build would install into, and
      that none of the files of `destdir` exists on the host;
    - /tmp: a canary file, back-dated by 30 days so that any tmpfiles age clean-up would take it too,
      must survive with its content and time, and no systemd-private-* directory may appear.
    /tmp and /usr are shared with concurrent work, so only changes a systemd would make are looked at.
    """

    TOPS = ("/run", "/var/lib", "/etc", "/usr", "/usr/lib", "/usr/share/doc")
    TREES = ("/run/systemd", "/run/vlease", "/var/lib/systemd", "/etc/systemd/system")
    DIRS = ("/usr/libexec", "/usr/bin", "/usr/lib/sysusers.d", "/usr/lib/tmpfiles.d", "/lib/systemd/system",
            "/etc/vlease", "/etc/sysusers.d", "/etc/tmpfiles.d", "/usr/local/libexec", "/usr/local/bin",
            "/var/lib/vlease", "/run/credentials", "/run/user")

    def __init__(self, destdir=None):
        self.destdir = destdir
        self.trees = {p: self._tree(p) for p in self.TREES}
        self.dirs = {p: self._stat(p) for p in self.DIRS}
        self.tmp_private = self._tmp_private()
        self.top = {p: set(os.listdir(p)) for p in self.TOPS}
        fd, self.canary = tempfile.mkstemp(prefix="vlease-systemd-canary-", dir="/tmp")
        self.canary_text = b"vlease system test canary %d\n" % os.getpid()
        os.write(fd, self.canary_text)
        os.close(fd)
        old = time.time() - 30 * 86400
        os.utime(self.canary, (old, old))
        self.canary_stat = os.stat(self.canary)

    @staticmethod
    def _stat(p):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return None
        return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns)

    @classmethod
    def _tree(cls, top):
        out = {}
        if not os.path.lexists(top):
            return None
        for root, dirs, files in os.walk(top):
            for n in dirs + files:
                p = os.path.join(root, n)
                st = cls._stat(p)
                out[p] = st if st is None or not stat.S_ISREG(st[0]) else st + (os.lstat(p).st_size,)
        out[top] = cls._stat(top)
        return out

    @staticmethod
    def _tmp_private():
        return {n for n in os.listdir("/tmp") if n.startswith("systemd-private-")}

    def installed_on_host(self):
        """Files of the destdir that exist on the host (must be none)."""
        found = []
        if not self.destdir:
            return found
        for root, dirs, files in os.walk(self.destdir):
            for n in files:
                rel = os.path.relpath(os.path.join(root, n), self.destdir)
                if os.path.lexists("/" + rel):
                    found.append("/" + rel)
        return found

    def differences(self):
        """A list of human-readable differences from the snapshot; empty when the host is untouched."""
        diffs = []
        for p, before in self.trees.items():
            after = self._tree(p)
            if before == after:
                continue
            if before is None or after is None:
                diffs.append(f"{p}: {'appeared' if before is None else 'vanished'}")
                continue
            for k in sorted(set(before) | set(after)):
                if before.get(k) != after.get(k):
                    diffs.append(f"{k}: {before.get(k)} -> {after.get(k)}")
        for p, before in self.dirs.items():
            after = self._stat(p)
            if before != after:
                diffs.append(f"{p}: {before} -> {after}")
        for p, before in self.top.items():
            new = set(os.listdir(p)) - before
            if new:
                diffs.append(f"{p}: new entries {sorted(new)}")
        diffs += [f"{p}: installed on the host" for p in self.installed_on_host()]
        try:
            st = os.stat(self.canary)
            with open(self.canary, "rb") as f:
                text = f.read()
            if text != self.canary_text or st.st_mtime_ns != self.canary_stat.st_mtime_ns:
                diffs.append(f"{self.canary}: changed")
        except FileNotFoundError:
            diffs.append(f"{self.canary}: removed (was /tmp cleaned?)")
        new_private = self._tmp_private() - self.tmp_private
        if new_private:
            diffs.append(f"/tmp: new {sorted(new_private)}")
        return diffs

    def close(self):
        try:
            os.unlink(self.canary)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------------------------------
# The container


class SystemdContainer:
    """One booted systemd-nspawn container.

    destdir  the `meson install --destdir` tree; its usr/ is laid over /usr inside the container.
    binds    (host_path, container_path) or (host_path, container_path, "rw") tuples.
    units    host paths of unit files, bound into /etc/systemd/system/<name>.
    dropins  {"unit.service": {"50-test.conf": "text"}}: /etc/systemd/system/unit.service.d/.
    files    {"/etc/path": text or (text, mode)}: written to the scratch dir and bound read-only.
    name     machine name (also the cgroup's and the scratch dir's).
    scratch_parent  where the scratch dir is made (default SRC/build/systemd-ns); never /tmp, /run.
    """

    def __init__(self, destdir, binds=(), units=(), dropins=None, name=None, files=None, scratch_parent=None,
                 boot_timeout=60.0, kernel_args=()):
        self.destdir = os.path.realpath(destdir) if destdir else None
        self.binds = list(binds)
        self.units = list(units)
        self.dropins = dict(dropins or {})
        self.files = dict(files or {})
        self.name = name or "vlt-%s" % os.urandom(4).hex()
        self.scratch_parent = os.path.realpath(scratch_parent or os.path.join(SRC, "build", "systemd-ns"))
        for bad in _FORBIDDEN_SCRATCH:
            if self.scratch_parent == bad or self.scratch_parent.startswith(bad + "/"):
                raise ValueError(f"scratch dir must not be under {bad}: {self.scratch_parent}")
        self.boot_timeout = boot_timeout
        self.kernel_args = list(kernel_args)
        self.scratch = None
        self.cgroup = os.path.join(CGROUP_ROOT, self.name)
        self.proc = None
        self.leader = None
        self.console_log = None
        self.exit_status = None
        self.timings = {}

    # -- setup -------------------------------------------------------------------------------------
    def _write(self, rel, text, mode=0o644):
        p = os.path.join(self.scratch, rel.lstrip("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def _nspawn_argv(self):
        argv = [NSPAWN, "-D", "/", "--volatile=yes", "--boot", "--register=no", "--keep-unit",
                "-M", self.name, "--link-journal=no", "--console=read-only"]
        if self.destdir and os.path.isdir(os.path.join(self.destdir, "usr")):
            argv.append("--overlay-ro=/usr:%s/usr:/usr" % self.destdir)
        # First boot (empty /etc) runs preset-all: enable nothing but what the test starts itself.
        argv.append("--bind-ro=%s:/etc/systemd/system-preset/00-vlease-test.preset"
                    % self._write("preset/00-vlease-test.preset", "disable *\n"))
        for u in self.units:
            argv.append("--bind-ro=%s:/etc/systemd/system/%s" % (os.path.realpath(u), os.path.basename(u)))
        for unit, confs in self.dropins.items():
            for fname, text in confs.items():
                p = self._write(f"dropins/{unit}.d/{fname}", text)
                argv.append("--bind-ro=%s:/etc/systemd/system/%s.d/%s" % (p, unit, fname))
        for i, (path, content) in enumerate(sorted(self.files.items())):
            text, mode = content if isinstance(content, tuple) else (content, 0o644)
            p = self._write(f"files/{i}/{os.path.basename(path)}", text, mode)
            argv.append("--bind-ro=%s:%s" % (p, path))
        for b in self.binds:
            opt = "--bind" if len(b) > 2 and b[2] == "rw" else "--bind-ro"
            argv.append("%s=%s:%s" % (opt, os.path.realpath(b[0]), b[1]))
        argv += ["--", "systemd.firstboot=off", "systemd.show_status=no"] + self.kernel_args
        return argv

    # -- lifecycle ---------------------------------------------------------------------------------
    def boot(self):
        """Start the container and wait (with a deadline) until `is-system-running --wait` says running."""
        if os.geteuid() != 0:
            raise ContainerError("booting a container needs root")
        if not os.access(NSPAWN, os.X_OK):
            raise ContainerError("systemd-nspawn missing: apt-get install systemd-container")
        if not os.path.isdir(CGROUP_ROOT) or not os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.procs")):
            raise ContainerError(f"{CGROUP_ROOT} is not a cgroup2 mount")
        if not os.path.isdir("/run/systemd"):
            raise ContainerError("/run/systemd missing: nothing to hide nspawn's bookkeeping under")
        t0 = time.monotonic()
        os.makedirs(self.scratch_parent, exist_ok=True)
        self.scratch = tempfile.mkdtemp(prefix=self.name + "-", dir=self.scratch_parent)
        os.chmod(self.scratch, 0o755)
        os.mkdir(self.cgroup)
        argv = self._nspawn_argv()
        self.console_log = os.path.join(self.scratch, "console.log")
        env = {"PATH": INNER_PATH, "LANG": "C.UTF-8", "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1",
               "SYSTEMD_LOG_COLOR": "0"}
        launcher = ["/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                    'mount -n -t tmpfs -o mode=0755,nosuid,nodev,size=8m vlease-nspawn /run/systemd && exec "$@"',
                    "sh"] + argv
        cg = self.cgroup

        def into_cgroup():
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            # If the test process dies without powering off, nspawn gets SIGTERM and powers off.
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

        with open(self.console_log, "wb") as log:
            self.proc = subprocess.Popen(launcher, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                         preexec_fn=into_cgroup, close_fds=True)
        try:
            self.leader = wait_until(self._find_leader, self.boot_timeout, "the container's systemd to start")
            wait_until(lambda: self._dead() or os.path.exists(f"/proc/{self.leader}/root/run/systemd/private"),
                       self.boot_timeout, "/run/systemd/private in the container")
            if self._dead():
                raise ContainerError("systemd-nspawn exited with %s" % self.proc.returncode)
            r = self.run(["systemctl", "is-system-running", "--wait"], timeout=self.boot_timeout)
            state = r.stdout.strip()
            if state != "running":
                failed = self.run(["systemctl", "--failed", "--no-legend", "--plain"]).stdout
                raise ContainerError(f"system state {state!r}; failed units:\n{failed}")
        except BaseException as e:
            msg = self.console()
            try:
                self.poweroff()
            finally:
                if isinstance(e, ContainerError):
                    raise ContainerError(f"{e}\n--- console ---\n{msg}") from None
            raise
        self.timings["boot"] = time.monotonic() - t0
        return self

    def _dead(self):
        return self.proc.poll() is not None

    def _find_leader(self):
        if self._dead():
            raise ContainerError("systemd-nspawn exited with %s:\n%s" % (self.proc.returncode, self.console()))
        for pid in _children(self.proc.pid):
            if _comm(pid) == "systemd":
                return pid
        return None

    def poweroff(self, timeout=30.0):
        """Power the container off (SIGTERM to nspawn by PID), wait, remove its cgroups and scratch dir."""
        t0 = time.monotonic()
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    if self.leader and _comm(self.leader) is not None:
                        os.kill(self.leader, signal.SIGKILL)    # PID 1 of the container: takes it all down
                    self.proc.kill()
                    self.proc.wait(10)
            if self.proc is not None:
                self.exit_status = self.proc.returncode
            self._remove_cgroups()
        finally:
            if self.scratch and os.path.isdir(self.scratch):
                shutil.rmtree(self.scratch)
            try:
                os.rmdir(self.scratch_parent)
            except OSError:
                pass
            self.scratch = None
        self.timings["poweroff"] = time.monotonic() - t0

    def _remove_cgroups(self):
        if not os.path.isdir(self.cgroup):
            return

        def rmdirs():
            for root, dirs, files in os.walk(self.cgroup, topdown=False):
                try:
                    os.rmdir(root)
                except OSError:
                    pass
            return not os.path.exists(self.cgroup)

        wait_until(rmdirs, 10, f"{self.cgroup} to empty", interval=0.05)

    def __enter__(self):
        return self.boot()

    def __exit__(self, *exc):
        self.poweroff()

    # -- control -----------------------------------------------------------------------------------
    def run(self, argv, user=None, check=False, timeout=60, input=None, env=None):
        """Run argv inside the container (all its namespaces), as root or as `user` (via setpriv,
        with the user's primary group and supplementary groups). Returns a CompletedProcess (text)."""
        cmd = ["nsenter", "-t", str(self.leader), "-a", "--", "env", "-i", "PATH=" + INNER_PATH,
               "LANG=C.UTF-8", "HOME=/", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]
        cmd += ["%s=%s" % kv for kv in (env or {}).items()]
        if user is not None and user != "root":
            cmd += ["setpriv", f"--reuid={user}", f"--regid={self.gid_of(user)}", "--init-groups", "--"]
        cmd += list(argv)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise ContainerError("%s exited %d:\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    def gid_of(self, user):
        r = self.run(["id", "-g", user], check=True)
        return int(r.stdout.strip())

    def systemctl(self, *args, check=True, timeout=60):
        return self.run(["systemctl", "--no-pager", *args], check=check, timeout=timeout)

    def unit_property(self, unit, prop):
        return self.systemctl("show", "-P", prop, unit).stdout.strip()

    def journal(self, unit=None):
        argv = ["journalctl", "--no-pager", "-o", "short-monotonic", "-b"]
        if unit:
            argv += ["-u", unit]
        return self.run(argv).stdout

    def sysusers(self, *lines):
        """Create users and groups inside the container (its /etc is a tmpfs)."""
        return self.run(["systemd-sysusers", "--inline", *lines], check=True)

    def path(self, p):
        """The container's path p as seen from the host (through /proc/LEADER/root)."""
        return f"/proc/{self.leader}/root/{p.lstrip('/')}"

    def console(self):
        try:
            with open(self.console_log, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""
