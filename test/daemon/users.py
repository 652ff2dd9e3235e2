"""Real users and groups for a test: made with useradd/groupadd in the set-up
and removed afterwards, so that an attack is tried by a real other user.
Needs root; a case without it raises harness.Skip."""
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from harness import Skip


def _run(*args):
    # useradd and groupadd lock /etc/passwd and /etc/group: cases running
    # side by side can find the lock taken, so try again a few times
    for _ in range(100):
        r = subprocess.run(list(args), capture_output=True)
        if r.returncode == 0:
            return
        err = r.stderr.decode(errors="replace")
        if "lock" not in err and "try again" not in err:
            raise AssertionError("%s: exit %d: %s" % (" ".join(args), r.returncode, err))
        time.sleep(0.05)
    raise AssertionError("%s: /etc/passwd stayed locked" % " ".join(args))


class User:
    def __init__(self, name, home):
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid, self.home = name, pw.pw_uid, pw.pw_gid, home

    def env(self, **extra):
        """A login-like environment of this user, as a shell of theirs has."""
        e = {"PATH": "/usr/local/bin:/usr/bin:/bin", "USER": self.name, "LOGNAME": self.name,
             "HOME": self.home, "SHELL": "/bin/sh", "LANG": "C"}
        e.update(extra)
        return e

    def become(self, umask=None):
        """A preexec_fn: the child takes this user's credentials, with the
        user's supplementary groups, as login(1) would give them."""
        def pre():
            os.initgroups(self.name, self.gid)
            os.setgid(self.gid)
            os.setuid(self.uid)
            if umask is not None:
                os.umask(umask)
        return pre

    def run(self, argv, cwd=None, umask=None, env=None, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(argv, cwd=cwd or self.home, env=env or self.env(),
                              preexec_fn=self.become(umask), **kw)


class Users:
    """with Users("alice", "bob", groups={"proj": ["alice"]}) as u:
    u.alice.uid ... Names get a per-process suffix so that cases running at
    the same time never share a user."""

    def __init__(self, *names, groups=None):
        if os.geteuid() != 0:
            raise Skip("needs root to create real users and groups")
        if not shutil.which("useradd"):
            raise Skip("useradd is not installed")
        self.tag = "dd%d" % (os.getpid() % 100000)
        self.names = names
        self.groups = groups or {}
        self.made_users, self.made_groups = [], []
        self.top = None

    def __enter__(self):
        try:
            self.top = tempfile.mkdtemp(prefix="dd-users-")
            os.chmod(self.top, 0o755)
            for n in self.names:
                full = "%s%s" % (n[:8], self.tag)
                home = os.path.join(self.top, n)
                _run("useradd", "-m", "-d", home, "-s", "/bin/sh", "-U", full)
                self.made_users.append(full)
                setattr(self, n, User(full, home))
            for g, members in self.groups.items():
                full = "%s%s" % (g[:8], self.tag)
                _run("groupadd", full)
                self.made_groups.append(full)
                for m in members:
                    _run("usermod", "-a", "-G", full, getattr(self, m).name)
                setattr(self, g, grp.getgrnam(full).gr_gid)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for full in self.made_users:
            subprocess.run(["pkill", "-KILL", "-u", full], capture_output=True)
            _run("userdel", "-r", "-f", full) if _exists_user(full) else None
        for full in self.made_groups:
            if _exists_group(full):
                _run("groupdel", full)
        if self.top:
            shutil.rmtree(self.top, ignore_errors=True)


def _exists_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _exists_group(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False
