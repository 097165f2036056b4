"""Helpers for the PAM suite: paths of the built module and test programs, PAM service directories,
the long-lived pam-driver, sanitizer report checks."""
import os
import shutil
import subprocess
import tempfile

from broker import BUILD

PAM_MODULE = os.path.join(BUILD, "pam_module", "pam_vlease.so")
PAM_DRIVER = os.path.join(BUILD, "tests", "pam", "pam-driver")
PAMTEST_RUN = os.path.join(BUILD, "tests", "pam", "pamtest-run")


_scratch = []


def scratch_dir(prefix):
    """A new directory under the temp dir, removed by remove_scratch_dirs() when the suite ends."""
    d = tempfile.mkdtemp(prefix=prefix)
    _scratch.append(d)
    return d


def remove_scratch_dirs():
    while _scratch:
        shutil.rmtree(_scratch.pop(), ignore_errors=True)


def asan_env(directory, name):
    """Sanitizer options that leave reports in `directory` (checked by the tests)."""
    return {
        "ASAN_OPTIONS": f"log_path={directory}/asan-{name}:detect_leaks=1:abort_on_error=0",
        "UBSAN_OPTIONS": f"log_path={directory}/ubsan-{name}:print_stacktrace=1:halt_on_error=1",
    }


def sanitizer_reports(directory):
    return [os.path.join(directory, f) for f in os.listdir(directory) if f.startswith(("asan", "ubsan"))]


def service_dir(lines_by_service, directory=None):
    """Writes one PAM service file per entry ({name: text}); returns the directory."""
    d = directory or scratch_dir("pam-vlease-test-")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    for name, text in lines_by_service.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return d


class PamDriver:
    """One long-lived pam-driver process: one PAM handle, like a login or sshd session process."""

    def __init__(self, confdir, service, user, env=None):
        self.dir = scratch_dir("pam-driver-")
        e = dict(os.environ)
        e.update(asan_env(self.dir, "driver"))
        e.update(env or {})
        self.proc = subprocess.Popen([PAM_DRIVER, confdir, service, user], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
        line = self.proc.stdout.readline()
        assert line.startswith("ready "), line + self.proc.stderr.read()
        self.pid = int(line.split()[1])

    def cmd(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"pam-driver died: {self.proc.stderr.read()}"
        return line.strip()

    def rc(self, command):
        return int(self.cmd(command))

    def end(self):
        if self.proc.poll() is None:
            assert self.rc("end") == 0
            self.proc.wait(10)
        self.check()

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)

    def check(self):
        reports = sanitizer_reports(self.dir)
        assert not reports, "".join(open(r).read() for r in reports)
