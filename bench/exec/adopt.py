#!/usr/bin/env python3
"""adopt: how long a restarted dispatchd takes to take over running jobs.

    bench/exec/adopt.py [--jobs N] [--rounds R] [--dispatchd PATH] [--supervisor PATH]

Each round starts a real dispatchd (its process supervisor on), runs N
process jobs of `sleep` at once (a pool of N CPUs), kills the daemon with
SIGKILL once every job runs, and starts it again on the same state dir.
It reports, per round and as medians:
- recovery: the engine's own time to replay its log and take the jobs
  over (the figure in its "recovered ..." line);
- ready: from the restart's exec to the daemon answering on its socket;
- and checks that every job is RUNNING again in its first attempt, with
  the same pid. Then it cancels them all and stops everything it started.
Standard library only; the build's dispatchd and supervisor by default."""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        self.tag = 0

    def call(self, op, **kw):
        self.tag += 1
        self.s.sendall(json.dumps(dict(kw, op=op, tag=self.tag)).encode() + b"\n")
        while True:
            m = json.loads(self.f.readline())
            if m.get("tag") == self.tag:
                if not m.get("ok"):
                    raise RuntimeError("%s: %s" % (op, m))
                return m.get("result", m)

    def close(self):
        self.s.close()


def start(args, state, sock, log):
    env = dict(os.environ, DISPATCHD_SUPERVISOR=args.supervisor)
    t0 = time.monotonic()
    p = subprocess.Popen([args.dispatchd, "--state-dir", state, "--socket", sock,
                          "--cpus", str(args.jobs)], stdout=log, stderr=subprocess.STDOUT,
                         env=env)
    deadline = t0 + 60
    while time.monotonic() < deadline:
        try:
            c = Conn(sock)
            c.call("ping")
            return p, c, time.monotonic() - t0
        except OSError:
            time.sleep(0.002)
    raise RuntimeError("dispatchd did not start")


def round_(args, n):
    top = tempfile.mkdtemp(prefix="dd-adopt-bench-")
    state, sock = os.path.join(top, "state"), os.path.join(top, "sock")
    log = open(os.path.join(top, "log"), "ab")
    p = c = None
    try:
        p, c, _ = start(args, state, sock, log)
        ids = [c.call("submit", argv=["sleep", "600"])["id"] for _ in range(n)]
        pids = {}
        deadline = time.monotonic() + 300
        while len(pids) < n and time.monotonic() < deadline:
            for j in ids:
                if j not in pids:
                    job = c.call("get", id=j)["job"]
                    if job["state"] == "running" and job.get("pid"):
                        pids[j] = job["pid"]
        assert len(pids) == n, "only %d of %d jobs started" % (len(pids), n)
        c.close()
        p.kill()
        p.wait()
        p, c, ready = start(args, state, sock, log)
        text = open(os.path.join(top, "log"), errors="replace").read()
        m = re.findall(r"recovered \d+ unfinished jobs \((\d+) running taken over.*in ([\d.]+) ms",
                       text)
        assert m, text[-2000:]
        taken, ms = int(m[-1][0]), float(m[-1][1])
        assert taken == n, "took over %d of %d" % (taken, n)
        for j in ids:
            job = c.call("get", id=j)["job"]
            assert job["state"] == "running" and job["attempt"] == 1 and job["pid"] == pids[j], job
        for j in ids:
            c.call("cancel", id=j)
        return ms / 1000.0, ready
    finally:
        if c:
            c.close()
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait()
        # what is left under this state dir's supervisor: its jobs, then it
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and os.readlink("/proc/%s/fd/4" % pid) == os.path.realpath(state):
                    for sig in (signal.SIGKILL,):
                        subprocess.run(["pkill", "-9", "-P", pid])
                        os.kill(int(pid), sig)
            except OSError:
                pass
        log.close()
        shutil.rmtree(top, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dispatchd", default=os.path.join(ROOT, "build", "daemon", "dispatchd"))
    ap.add_argument("--supervisor", default=os.environ.get(
        "DISPATCHD_SUPERVISOR", os.path.join(ROOT, "build", "supervisor", "dispatchd-supervisor")))
    args = ap.parse_args()
    if args.jobs < 1 or args.rounds < 1:
        ap.error("--jobs and --rounds must be at least 1")
    rec, rdy = [], []
    for i in range(args.rounds):
        r, d = round_(args, args.jobs)
        rec.append(r)
        rdy.append(d)
        print("adopt: round %d: %d running jobs taken over; recovery %.3f s, ready in %.3f s"
              % (i + 1, args.jobs, r, d), file=sys.stderr)
    print("adopt  %d running process jobs, SIGKILL and restart, %d rounds" % (args.jobs, args.rounds))
    print("  recovery (log replay and take-over)  median %.3f s  (min %.3f, max %.3f)"
          % (statistics.median(rec), min(rec), max(rec)))
    print("  restart to answering                 median %.3f s  (min %.3f, max %.3f)"
          % (statistics.median(rdy), min(rdy), max(rdy)))


if __name__ == "__main__":
    main()
