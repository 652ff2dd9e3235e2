#!/usr/bin/env python3
"""Keyed submit_batch through a fresh dispatchd: one connection sends 60
batches of 1,000 jobs with new idempotency keys, one after the other, and
prints the jobs/s and the daemon's main-thread CPU per 1,000 jobs.

    bench/daemon/keyed_batch.py build/daemon/dispatchd    (DUR=fsync: durable)
"""
import json, os, socket, subprocess, sys, tempfile, time
exe = sys.argv[1]
d = tempfile.mkdtemp(dir="/var/tmp")
sock = os.path.join(d, "s")
p = subprocess.Popen([exe, "--state-dir", os.path.join(d, "st"), "--socket", sock,
                      "--durability", os.environ.get("DUR", "none")], stderr=subprocess.DEVNULL)
for _ in range(100):
    if os.path.exists(sock): break
    time.sleep(0.05)
s = socket.socket(socket.AF_UNIX); s.connect(sock); f = s.makefile("rb")
B, N = 1000, 60
def batch(k):
    jobs = [{"queue": "q", "key": "k-%d-%d" % (k, i)} for i in range(B)]
    return (json.dumps({"op": "submit_batch", "tag": k, "jobs": jobs}) + "\n").encode()
lines = [batch(k) for k in range(N)]
# utime + stime of the main thread, in clock ticks (1/100 s)
stat = lambda: sum(int(x) for x in open("/proc/%d/task/%d/stat" % (p.pid, p.pid)).read().split(")")[1].split()[11:13])
c0, t0 = stat(), time.time()
for l in lines:
    s.sendall(l)
    r = json.loads(f.readline())
    assert r["ok"], r
t1, c1 = time.time(), stat()
print("%.0f keyed jobs/s, daemon main thread %.2f ms CPU per 1000 jobs" % (B * N / (t1 - t0), (c1 - c0) * 10.0 / N))
p.terminate(); p.wait()
