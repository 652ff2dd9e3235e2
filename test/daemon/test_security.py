"""The security suite (DESIGN.md section 9): a root dispatchd is a privilege
boundary between local users. Each case makes real users and groups
(test/daemon/users.py), tries one attack against a root dispatchd as those
users would, and removes them. Without root every case is skipped, with
the reason. Run one with: test_security.py --case NAME."""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DISPATCHCTL, DISPATCHD, Client, Daemon, Skip, children, run_cases,  # noqa: E402
                     supervisors, until)
from users import Users  # noqa: E402

PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def need_root():
    """Every case starts here: without root it is skipped, saying why
    (harness.py puts the binaries where the case's users can run them)."""
    if os.geteuid() != 0:
        raise Skip("needs root: the attacks are made on a root dispatchd by real users")

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def open_socket(d):
    """The socket is 0660 root:root; an admin lets local users in by its
    group or mode. The daemon's own checks are what is under test."""
    os.chmod(d.sock, 0o666)


def ctl(user, d, *args, cwd=None, umask=None, env=None, input=None):
    e = user.env(DISPATCHD_SOCKET=d.sock, **(env or {}))
    return user.run([DISPATCHCTL] + list(args), cwd=cwd, umask=umask, env=e, input=input)


def text(r):
    return "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout.decode(errors="replace"),
                                                 r.stderr.decode(errors="replace"))


def refuses_to_start(d, *words):
    """dispatchd exits 1 on the state dir, saying why (@words in its log)."""
    d.start(wait=False)
    try:
        rc = d.proc.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError("dispatchd started on a state dir it must refuse:\n" + d.logtext())
    log = d.logtext()
    assert rc == 1, "exit %d:\n%s" % (rc, log)
    for w in words:
        assert w in log, "%r not in the log:\n%s" % (w, log)
    assert not os.path.exists(d.sock) or not _answers(d.sock), "it listened anyway"
    return log


def _answers(path):
    try:
        with Client(path, timeout=2) as c:
            return c.call("ping")["ok"]
    except OSError:
        return False


# ---- the state directory --------------------------------------------------

@case
def state_dir_of_another_user_is_refused():
    need_root()
    with Users("mallory") as u, Daemon(autostart=False) as d:
        os.mkdir(d.state, 0o700)
        os.chown(d.state, u.mallory.uid, u.mallory.gid)
        refuses_to_start(d, d.state, u.mallory.name, str(u.mallory.uid), "0700")


@case
def world_writable_state_dir_is_refused():
    need_root()
    with Daemon(autostart=False) as d:
        os.mkdir(d.state)
        os.chmod(d.state, 0o777)
        log = refuses_to_start(d, d.state, "0777")
        assert "chmod" in log or "another" in log, log


@case
def a_prepared_log_claiming_root_never_runs():
    """Another user hands root a state dir whose log holds a job of uid 0:
    today's attack would replay it and run it as root."""
    need_root()
    with Users("mallory") as u:
        secret = tempfile.mkdtemp(prefix="dd-sec-")  # root's own, 0700
        marker = os.path.join(secret, "ran-as-root")
        with Daemon() as d:
            with d.client() as c:
                c.ok("submit", argv=["sh", "-c", "id -u > " + marker], delay=3)
            d.stop()
            state = d.state
            # mallory "prepared" it: every file and directory is hers
            for root, dirs, files in os.walk(state):
                for n in dirs + files:
                    os.lchown(os.path.join(root, n), u.mallory.uid, u.mallory.gid)
            os.chown(state, u.mallory.uid, u.mallory.gid)
            d2 = Daemon(state=state, autostart=False)
            with d2:
                refuses_to_start(d2, state, u.mallory.name)
            # even a root-owned top dir with her files inside is refused
            os.chown(state, 0, 0)
            d3 = Daemon(state=state, autostart=False)
            with d3:
                refuses_to_start(d3, u.mallory.name)
        assert not os.path.exists(marker), "the prepared job ran"
        shutil.rmtree(secret)


@case
def created_state_is_private():
    """What the engine creates is 0700 / 0600, whatever umask it runs under."""
    need_root()
    d = Daemon(autostart=False)
    old = os.umask(0)
    try:
        d.start()
    finally:
        os.umask(old)
    with d:
        with d.client() as c:
            c.wait(c.ok("submit", argv=["sh", "-c", "echo out; echo err >&2"])["id"])
        for root, dirs, files in os.walk(d.state):
            for n in dirs + files:
                p = os.path.join(root, n)
                m = stat.S_IMODE(os.lstat(p).st_mode)
                assert m & 0o077 == 0, "%s is %o" % (p, m)
        assert stat.S_IMODE(os.stat(d.state).st_mode) == 0o700


# ---- keys, environment, directory, groups, umask, stdin -------------------------

@case
def idempotency_keys_belong_to_their_owner():
    need_root()
    with Users("alice", "bob") as u, Daemon() as d:
        open_socket(d)
        a = ctl(u.alice, d, "submit", "--key", "nightly", "--", "sleep", "30")
        assert a.returncode == 0, text(a)
        b = ctl(u.bob, d, "submit", "--key", "nightly", "--", "id", "-u")
        assert b.returncode == 0, text(b)
        ida, idb = int(a.stdout), int(b.stdout)
        assert ida != idb, "bob's submit was answered with alice's job %d" % ida
        again = ctl(u.alice, d, "submit", "--key", "nightly", "--", "sleep", "30")
        assert int(again.stdout) == ida, text(again)
        with d.client() as c:
            job = c.wait(idb)
            assert job["state"] == "succeeded" and job["uid"] == u.bob.uid, job
            c.ok("cancel", id=ida)


@case
def the_daemons_environment_never_reaches_a_job():
    need_root()
    with Users("alice") as u, Daemon(env={"DD_DAEMON_SECRET": "root-only"}) as d:
        open_socket(d)
        r = ctl(u.alice, d, "run", "--", "env", env={"ALICE_MARKER": "mine"})
        assert r.returncode == 0, text(r)
        env = dict(l.split("=", 1) for l in r.stdout.decode().splitlines() if "=" in l)
        assert "DD_DAEMON_SECRET" not in env, env
        assert env.get("ALICE_MARKER") == "mine", env
        assert env.get("USER") == u.alice.name and env.get("HOME") == u.alice.home, env
        # a bare protocol submit with no env gets the passwd entry's alone
        out = u.alice.run([PYTHON, "-c", _RAW_SUBMIT, d.sock, json.dumps(["/usr/bin/env"])])
        assert out.returncode == 0, text(out)
        names = sorted(l.split("=", 1)[0] for l in out.stdout.decode().splitlines() if "=" in l)
        assert names == ["HOME", "LOGNAME", "SHELL", "USER"], names


# Submits argv (JSON) on the socket (argv[1]) with nothing else, waits and
# prints the job's stdout: a client that sends no environment at all.
_RAW_SUBMIT = r"""
import base64, json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
def call(**r):
    f.write(json.dumps(r).encode() + b"\n"); f.flush(); return json.loads(f.readline())
j = call(op="submit", argv=json.loads(sys.argv[2]))
assert j["ok"], j
w = call(op="wait", id=j["result"]["id"], timeout=30)
assert w["ok"] and w["result"]["job"]["state"] == "succeeded", w
o = call(op="output", id=j["result"]["id"])
sys.stdout.write(base64.b64decode(o["result"]["data"]).decode())
"""


@case
def a_directory_the_user_cannot_enter():
    need_root()
    with Users("alice", "bob") as u, Daemon() as d:
        open_socket(d)
        private = os.path.join(u.alice.home, "private")
        os.mkdir(private, 0o700)
        os.mkdir(os.path.join(private, "exists"))
        os.chown(private, u.alice.uid, u.alice.gid)
        # as root the daemon could enter it; bob must not, nor learn what is there
        for target in (private, os.path.join(private, "exists"), os.path.join(private, "nothing")):
            r = ctl(u.bob, d, "run", "--cwd", target, "--", "ls")
            assert r.returncode != 0, text(r)
            assert ("cannot enter %s: Permission denied" % target) in r.stderr.decode(), text(r)
        r = ctl(u.alice, d, "run", "--cwd", private, "--", "pwd")
        assert r.returncode == 0 and r.stdout.decode().strip() == private, text(r)


@case
def supplementary_groups_of_the_owner():
    need_root()
    with Users("alice", groups={"proj": ["alice"], "later": []}) as u, Daemon() as d:
        open_socket(d)
        shared = os.path.join(tempfile.mkdtemp(prefix="dd-grp-"), "shared")
        os.chmod(os.path.dirname(shared), 0o755)
        os.mkdir(shared)
        os.chown(shared, 0, u.proj)
        os.chmod(shared, 0o2770)
        r = ctl(u.alice, d, "run", "--", "sh", "-c", "id -G; touch %s/made && echo wrote" % shared)
        assert r.returncode == 0, text(r)
        groups, wrote = r.stdout.decode().split("\n", 1)
        assert str(u.proj) in groups.split(), groups
        assert wrote.strip() == "wrote" and os.stat(shared + "/made").st_uid == u.alice.uid
        # groups are resolved once per user; SIGHUP reads them again
        subprocess.run(["usermod", "-a", "-G", u.made_groups[1], u.alice.name], check=True)
        d.send_signal(signal.SIGHUP)

        def sees_later():
            r = ctl(u.alice, d, "run", "--", "id", "-G")
            return r.returncode == 0 and str(u.later) in r.stdout.decode().split()
        until(sees_later, timeout=20, what="the new group after SIGHUP")
        shutil.rmtree(os.path.dirname(shared))


@case
def the_submitters_umask():
    need_root()
    with Users("alice") as u, Daemon() as d:
        open_socket(d)
        for mask, mode in ((0o027, "640"), (0o077, "600"), (0o002, "664")):
            r = ctl(u.alice, d, "run", "--", "sh", "-c", "rm -f f; touch f; stat -c %a f", umask=mask)
            assert r.returncode == 0 and r.stdout.decode().strip() == mode, (oct(mask), text(r))


@case
def stdin_the_user_cannot_read():
    need_root()
    with Users("alice") as u, Daemon() as d:
        open_socket(d)
        r = ctl(u.alice, d, "submit", "--stdin", "/etc/shadow", "--", "cat")
        assert r.returncode == 0, text(r)
        jid = int(r.stdout)
        with d.client() as c:
            job = c.wait(jid)
            assert job["state"] == "failed", job
            assert "/etc/shadow" in job["reason"] and "Permission denied" in job["reason"], job
            assert "root:" not in _output(c, jid)


@case
def stdin_is_opened_without_roots_capabilities():
    """--stdin is opened as its owner with none of root's capabilities
    (/dev/kmsg opens only with CAP_SYSLOG under dmesg_restrict), and never
    from /proc: opened in the daemon's memory, /proc/self/maps would be
    the daemon's, and /proc/kallsyms shows addresses to CAP_SYSLOG."""
    need_root()
    with Users("alice") as u, Daemon() as d:
        open_socket(d)
        for path in ("/proc/self/maps", "/proc/kallsyms"):
            r = ctl(u.alice, d, "run", "--stdin", path, "--", "cat")
            assert r.returncode != 0 and ("cannot open stdin " + path).encode() in r.stderr, text(r)
            assert not r.stdout, text(r)
        if open("/proc/sys/kernel/dmesg_restrict").read().strip() == "1":
            own = u.alice.run(["head", "-c", "1", "/dev/kmsg"])
            assert own.returncode != 0, "alice may read /dev/kmsg herself: %s" % text(own)
            r = ctl(u.alice, d, "run", "--stdin", "/dev/kmsg", "--", "head", "-c", "1")
            assert r.returncode != 0 and b"cannot open stdin /dev/kmsg" in r.stderr, text(r)


@case
def output_files_are_opened_as_their_owner():
    """--output and --error are opened as the job's owner, never as root:
    not in a directory only root may write, not over a file of root's, not
    in /proc; what is written belongs to the owner. The pattern names each
    array element's file."""
    need_root()
    with Users("alice") as u, Daemon() as d:
        open_socket(d)
        work = tempfile.mkdtemp(prefix="dd-out-")
        mine = os.path.join(work, "alice")
        os.mkdir(mine)
        os.chown(mine, u.alice.uid, u.alice.gid)
        os.chmod(work, 0o755)
        victim = os.path.join(work, "root-owned")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.chmod(victim, 0o644)
        try:
            for path, why in ((os.path.join(work, "new"), "Permission denied"),
                              (victim, "Permission denied"),
                              ("/etc/dd-test-output", "Permission denied"),
                              ("/proc/self/mem", "")):
                r = ctl(u.alice, d, "submit", "--output", path, "--", "echo", "owned")
                assert r.returncode == 0, text(r)
                with d.client() as c:
                    job = c.wait(int(r.stdout))
                assert job["state"] == "failed" and ("cannot open stdout " + path) in job["reason"], job
                assert why in job["reason"], job
            assert open(victim).read() == "precious\n"
            assert not os.path.exists(os.path.join(work, "new"))
            assert not os.path.exists("/etc/dd-test-output")
            r = ctl(u.alice, d, "submit", "--array", "1-2", "--output", "%x-%A_%a-%u.out",
                    "--name", "job", "--", "sh", "-c", "echo out; echo err >&2", cwd=mine)
            assert r.returncode == 0, text(r)
            arr = int(r.stdout)
            with d.client() as c:
                assert c.wait(arr)["state"] == "succeeded"
            for k in (1, 2):
                p = os.path.join(mine, "job-%d_%d-%s.out" % (arr, k, u.alice.name))
                st = os.stat(p)
                assert (st.st_uid, st.st_gid) == (u.alice.uid, u.alice.gid), (p, st)
                assert open(p).read() == "out\nerr\n", open(p).read()
        finally:
            shutil.rmtree(work, ignore_errors=True)


@case
def a_job_has_a_session_of_its_own():
    """A job never shares the daemon's session, and so never its
    controlling terminal (a root dispatchd started from a terminal)."""
    with Daemon() as d:
        r = d.ctl("run", "--", PYTHON, "-c",
                  "import os; print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())")
        assert r.returncode == 0 and r.stdout == b"True True\n", (r.returncode, r.stdout, r.stderr)


@case
def a_start_its_user_stops_does_not_hold_the_workers():
    """Between the child's switch of uid and its exec (a long PATH makes
    that long), its user may stop it, and with it the worker that waits for
    the exec. The watchdog kills such a start: other users' jobs go on,
    and the stopped one fails saying why."""
    need_root()
    if int(os.environ.get("DD_TEST_SCALE", "1")) > 1:
        raise Skip("a race of timing: a sanitizer build is too slow to hit it in bounded time "
                   "(the release build runs it)")
    import threading
    with Users("mallory") as u, Daemon() as d:
        open_socket(d)
        stop = threading.Event()
        stopped = set()
        # the starts run in the process supervisor (or, without one, in
        # the daemon): a child that still has its parent's image
        parents = supervisors(d.state) or [d.proc.pid]
        images = {os.readlink("/proc/%d/exe" % p) for p in parents}

        def stopper():  # what mallory does: SIGSTOP to her processes, as they appear
            while not stop.is_set():
                kids = [k for p in parents for k in children(p)]
                for pid in kids:
                    if pid in stopped:
                        continue
                    try:
                        with open("/proc/%d/status" % pid) as f:
                            uid = [l.split()[1] for l in f if l.startswith("Uid:")][0]
                        # hers, and still the daemon's image: a start not exec'd yet
                        if int(uid) == u.mallory.uid and os.readlink("/proc/%d/exe" % pid) in images:
                            os.kill(pid, signal.SIGSTOP)
                            stopped.add(pid)
                            # it may have exec'd between the look and the
                            # stop: then it is a job that ran, not a start,
                            # and it goes on. Looked at once it has stopped
                            # (a stopped process execs nothing: that look
                            # is final)
                            until(lambda: _proc_state(pid) in ("T", "t", None), timeout=30,
                                  what="pid %d to stop" % pid)
                            if os.readlink("/proc/%d/exe" % pid) not in images:
                                os.kill(pid, signal.SIGCONT)
                    except (OSError, IndexError):
                        pass
        t = threading.Thread(target=stopper)
        t.start()
        try:
            path = ":".join("/nonexist/d%05d" % i for i in range(6000)) + ":/usr/bin:/bin"
            ids = []
            for _ in range(6):
                r = ctl(u.mallory, d, "submit", "--export=NONE", "--env", "PATH=" + path, "--", "true")
                assert r.returncode == 0, text(r)[:2000]
                ids.append(int(r.stdout))
            # each stopped start holds a worker until the watchdog (10 s);
            # sanitizer builds take far longer to start anything
            with Client(d.sock, timeout=600) as c:
                mine = c.ok("submit", argv=["true"], priority="urgent")["id"]
                assert c.wait(mine, timeout=300)["state"] == "succeeded"
                ends = [c.wait(i, timeout=300) for i in ids]
        finally:
            stop.set()
            t.join()
        hung = [j for j in ends if "not started within" in j["reason"]]
        assert hung, "no start was stopped (the race was not hit): %s" % ends
        assert all(j["state"] == "failed" for j in hung), hung
        assert "start hung" in d.logtext()


def _proc_state(pid):
    """The state letter of @pid (R, S, T...), or None once it has gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _output(c, jid):
    import base64
    return base64.b64decode(c.ok("output", id=jid)["data"]).decode(errors="replace")


@case
def a_job_never_runs_as_root_for_a_user():
    need_root()
    with Users("alice") as u, Daemon() as d:
        open_socket(d)
        # the owner comes from the socket's credentials, never from the request
        out = u.alice.run([PYTHON, "-c", _RAW_FIELDS, d.sock])
        assert out.returncode == 0, text(out)
        res = json.loads(out.stdout)
        assert res["uid_field"] == "EINVAL" and res["gid_field"] == "EINVAL", res
        # a uid with no passwd entry: refused at its start, never run with root's groups
        r = subprocess.run([PYTHON, "-c", _RAW_SUBMIT, d.sock, json.dumps(["id"])],
                           preexec_fn=_as_unknown_uid, capture_output=True, timeout=60)
        assert r.returncode != 0 and b"passwd" in r.stderr, text(r)


_RAW_FIELDS = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
def call(**r):
    f.write(json.dumps(r).encode() + b"\n"); f.flush(); return json.loads(f.readline())
a = call(op="submit", argv=["id", "-u"], uid=0)
b = call(op="submit", argv=["id", "-u"], gid=0)
print(json.dumps({"uid_field": a["error"]["code"], "gid_field": b["error"]["code"]}))
"""


def _as_unknown_uid():
    os.setgroups([])
    os.setgid(54321)
    os.setuid(54321)


# ---- the client trusts only its own daemon -------------------------------------

@case
def a_squatted_socket_is_refused():
    need_root()
    with Users("alice", "bob") as u:
        shared = tempfile.mkdtemp(prefix="dd-squat-")
        os.chmod(shared, 0o1777)
        path = os.path.join(shared, "dispatchd.sock")
        bobs = _start_as(u.bob, path)
        try:
            r = ctl_at(u.alice, path, "ping")
            assert r.returncode != 0, text(r)
            err = r.stderr.decode()
            assert path in err and str(u.bob.uid) in err, text(r)
            # bob's own client talks to it
            assert ctl_at(u.bob, path, "ping").returncode == 0
        finally:
            _stop(bobs)
        # the default path without XDG_RUNTIME_DIR is in a private directory;
        # bob makes alice's beforehand and puts his daemon there
        private = default_private_dir(u.alice.uid)
        shutil.rmtree(private, ignore_errors=True)
        os.mkdir(private, 0o777)
        os.chmod(private, 0o777)
        os.chown(private, u.bob.uid, u.bob.gid)
        bobs = _start_as(u.bob, os.path.join(private, "dispatchd.sock"))
        try:
            env = u.alice.env()
            r = u.alice.run([DISPATCHCTL, "ping"], env=env)
            assert r.returncode != 0, text(r)
            assert private in r.stderr.decode(), text(r)
        finally:
            _stop(bobs)
            shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


def default_private_dir(uid):
    return "/tmp/dispatchd-%d" % uid


def ctl_at(user, path, *args):
    return user.run([DISPATCHCTL, "-s", path] + list(args))


def _start_as(user, sock):
    state = os.path.join(user.home, "dd-state")
    log = open(os.path.join(user.home, "dd.log"), "wb")
    p = subprocess.Popen([DISPATCHD, "--state-dir", state, "--socket", sock, "--workers", "1"],
                         stdout=log, stderr=subprocess.STDOUT, env=user.env(),
                         preexec_fn=user.become(), cwd=user.home)
    log.close()

    def up():
        if p.poll() is not None:
            raise AssertionError("bob's dispatchd exited %d" % p.returncode)
        return ctl_at(user, sock, "ping").returncode == 0
    until(up, timeout=20, what="bob's dispatchd")
    os.chmod(sock, 0o666)  # the squatter lets everyone in
    return p


def _stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


if __name__ == "__main__":
    sys.exit(run_cases(CASES, "security"))
