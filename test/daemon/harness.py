"""Integration test harness: starts a real dispatchd on a temporary state
dir and socket, and speaks its protocol over raw sockets (or runs
dispatchctl). Standard library only."""
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DISPATCHD = os.environ.get("DISPATCHD", "build/daemon/dispatchd")
DISPATCHCTL = os.environ.get("DISPATCHCTL", "build/daemon/dispatchctl")


def _public(path):
    """True if every user may run @path (each folder above it searchable)."""
    p = os.path.abspath(path)
    while True:
        try:
            if not os.stat(p).st_mode & 0o001:
                return False
        except OSError:
            return False
        if p == "/":
            return True
        p = os.path.dirname(p)


def _public_binaries(d, c):
    """dispatchd and dispatchctl where the tests' other users can run them:
    a checkout under root's home is out of their reach, so the two (and
    the library dispatchd finds at $ORIGIN/..) are copied to a public
    folder, removed at exit."""
    d, c = os.path.abspath(d), os.path.abspath(c)
    if _public(d) and _public(c) or not (os.path.exists(d) and os.path.exists(c)):
        return d, c
    import atexit
    top = tempfile.mkdtemp(prefix="dd-bin-")
    atexit.register(shutil.rmtree, top, True)
    os.chmod(top, 0o755)
    os.mkdir(os.path.join(top, "daemon"), 0o755)
    lib = os.path.join(os.path.dirname(os.path.dirname(d)), "libdispatchd.so.0")
    if os.path.exists(lib):
        shutil.copy2(lib, top)
    for b in (d, c):
        shutil.copy2(b, os.path.join(top, "daemon"))
    return os.path.join(top, "daemon", "dispatchd"), os.path.join(top, "daemon", "dispatchctl")


# absolute, and where a test's second user can run them too
if os.environ.get("DISPATCHD") and os.environ.get("DISPATCHCTL"):
    DISPATCHD, DISPATCHCTL = _public_binaries(DISPATCHD, DISPATCHCTL)


def supervisors(state):
    """The pids of the process supervisors that hold @state's jobs: the
    dispatchd-supervisor processes whose fd 4 is that state dir."""
    want = os.path.realpath(state)
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if not os.readlink("/proc/%s/exe" % pid).endswith("/dispatchd-supervisor"):
                continue
            if os.readlink("/proc/%s/fd/4" % pid) == want:
                found.append(int(pid))
        except OSError:
            pass
    return found


def children(pid):
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


def gone(pid):
    """No such process, or a zombie an init has not reaped yet."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def kill_tree(sup):
    """Ends the supervisor @sup and its jobs (each its own process group)."""
    for kid in children(sup):
        for sig_to in (lambda: os.killpg(kid, signal.SIGKILL), lambda: os.kill(kid, signal.SIGKILL)):
            try:
                sig_to()
            except OSError:
                pass
    try:
        os.kill(sup, signal.SIGKILL)
    except OSError:
        pass


def raise_nofile(n=16384):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(n, hard) if hard != resource.RLIM_INFINITY else n
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Daemon:
    """One dispatchd. Use as a context manager; stop() drains it."""

    def __init__(self, *extra, config=None, state=None, env=None, autostart=True):
        self.dir = tempfile.mkdtemp(prefix="dd-it-")
        os.chmod(self.dir, 0o755)  # a second user's client must reach the socket
        self.autostart = autostart
        self.state = state or os.path.join(self.dir, "state")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "log")
        self.extra = list(extra)
        self.config = config
        self.env = env
        self.proc = None

    def start(self, wait=True):
        args = [DISPATCHD, "--state-dir", self.state, "--socket", self.sock, "--workers", "2"] + self.extra
        if self.config is not None:
            path = os.path.join(self.dir, "dispatchd.ini")
            with open(path, "w") as f:
                f.write(self.config)
            args += ["-c", path]
        env = dict(os.environ, **(self.env or {}))
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=raise_nofile)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("dispatchd exited %d:\n%s" % (self.proc.returncode, self.logtext()))
            try:
                with Client(self.sock) as c:
                    if c.call("ping")["ok"]:
                        return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("dispatchd not ready:\n" + self.logtext())

    def logtext(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("dispatchd did not stop on %s:\n%s" % (sig, self.logtext()))
        rc = self.proc.returncode if self.proc else 0
        if self.proc:
            self.logf.close()
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()

    def alive(self):
        return self.proc.poll() is None

    def client(self):
        return Client(self.sock)

    def ctl(self, *args, check=None, user=None, input=None):
        env = dict(os.environ, DISPATCHD_SOCKET=self.sock)
        pre = None
        if user is not None:
            def pre():
                os.setgid(0)
                os.setuid(user)
        r = subprocess.run([DISPATCHCTL] + list(args), capture_output=True, env=env, timeout=60,
                           preexec_fn=pre, input=input)
        if check is not None:
            assert r.returncode == check, "dispatchctl %s: exit %d (want %d)\nstdout: %s\nstderr: %s" % (
                " ".join(args), r.returncode, check, r.stdout.decode(), r.stderr.decode())
        return r

    def __enter__(self):
        return self.start() if self.autostart else self

    def __exit__(self, etype, *exc):
        try:
            if etype is not None and self.proc:
                import sys
                sys.stderr.write("---- dispatchd log ----\n%s\n" % self.logtext()[-20000:])
            if self.proc and self.proc.poll() is None:
                # a stop as a service's: the engine removes what it made
                # (its cgroups), and jobs it leaves running go on under
                # the supervisor
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            sups = supervisors(self.state) if os.path.dirname(self.state) == self.dir else []
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        # its own state dir is gone, and nobody comes back for its jobs:
        # the supervisor kills them, removes their cgroups and exits;
        # one that does not is killed here
        deadline = time.monotonic() + 10
        while sups and time.monotonic() < deadline:
            sups = [p for p in sups if not gone(p)]
            if sups:
                time.sleep(0.01)
        for sup in sups:
            kill_tree(sup)


class Client:
    """A protocol client: call() sends one request and returns its answer
    (matched by tag); send()/recv() for pipelining and raw bytes."""

    def __init__(self, path=None, tcp=None, timeout=30):
        if tcp:
            self.s = socket.create_connection(tcp, timeout=timeout)
        else:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(path)
        self.buf = b""
        self.tag = 0
        self.events = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.s.close()

    def send_raw(self, data):
        self.s.sendall(data)

    def send(self, op, **fields):
        self.tag += 1
        req = dict(fields, op=op, tag=self.tag)
        self.s.sendall(json.dumps(req).encode() + b"\n")
        return self.tag

    def raw_line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def line(self):
        line = self.raw_line()
        return None if line is None else json.loads(line)

    def recv(self, tag):
        while True:
            m = self.line()
            if m is None:
                raise ConnectionError("closed by dispatchd")
            if "event" in m:
                self.events.append(m)
                continue
            if m.get("tag") == tag:
                return m

    def call(self, op, **fields):
        return self.recv(self.send(op, **fields))

    def ok(self, op, **fields):
        m = self.call(op, **fields)
        assert m["ok"], "%s %s: %s" % (op, fields, m)
        return m["result"]

    def err(self, op, code, **fields):
        m = self.call(op, **fields)
        assert not m["ok"] and m["error"]["code"] == code, "%s %s: want %s, got %s" % (op, fields, code, m)
        return m["error"]

    def wait(self, jid, timeout=30):
        return self.ok("wait", id=jid, timeout=timeout)["job"]


def until(pred, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class Skip(Exception):
    """A case that cannot run here: reported, exit 77 when it ran alone."""


def run_cases(cases, suite):
    """The command line of a case file: --list, or --case NAME..., or all.
    Prints [PASS]/[FAIL]/[SKIP] per case; returns the exit status."""
    import sys
    import traceback
    if len(sys.argv) == 2 and sys.argv[1] == "--list":
        print("\n".join(cases))
        return 0
    names = sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "--case" else list(cases)
    failed = 0
    for name in names:
        t0 = time.time()
        try:
            cases[name]()
            print("[PASS] %s::%s (%.1f s)" % (suite, name, time.time() - t0))
        except Skip as e:
            print("[SKIP] %s::%s: %s" % (suite, name, e))
            if len(names) == 1:
                return 77
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            print("[FAIL] %s::%s" % (suite, name))
            failed += 1
    return 1 if failed else 0
