"""The jitter probe against an independent tool: runqlat (Debian's
libbpf-tools) watches the same thread of the same workload at the same
time; the counts of run-queue waits must agree within 20 %, and the
medians within a factor of 4 (runqlat's buckets are powers of two).
Exit 77 (skip) when BPF is not permitted or runqlat is missing."""
import json
import os
import re
import shutil
import subprocess
import sys

workload = os.environ.get("PROBE_WORKLOAD", "build/test/telemetry/probe-workload")
runqlat = shutil.which("runqlat") or ("/usr/sbin/runqlat" if os.path.exists("/usr/sbin/runqlat") else None)
if not runqlat:
    print("[SKIP] runqlat not found (Debian package libbpf-tools)")
    sys.exit(77)

w = subprocess.Popen([workload], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
tid_line = w.stdout.readline()
if not tid_line:
    err = w.stderr.read().decode()
    w.wait()
    if w.returncode == 77:
        print("[SKIP] " + err.strip())
        sys.exit(77)
    sys.exit("workload failed: %s" % err)
tid = int(tid_line)
# runqlat on the same process, one 3 s interval, per thread, microseconds;
# line-buffered, so that its "Tracing ..." line (printed once attached)
# comes through the pipe at once
r = subprocess.Popen(["stdbuf", "-oL", runqlat, "-L", "-p", str(w.pid), "3", "1"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
head = b""
while True:
    line = r.stdout.readline()
    head += line
    if not line or line.startswith(b"Tracing"):
        break
# the workload starts once runqlat watches (or has given up)
w.stdin.write(b"go\n")
w.stdin.flush()
ours = json.loads(w.stdout.readline())
out, err = r.communicate(timeout=30)
out = head + out
w.stdin.write(b"bye\n")
w.stdin.flush()
w.wait(timeout=10)
if r.returncode != 0:
    text = (out + err).decode()
    if "ermission" in text or "Operation not permitted" in text:
        print("[SKIP] runqlat: " + text.strip()[-200:])
        sys.exit(77)
    sys.exit("runqlat failed: " + text)

# its histogram for our thread: "tid = N comm" then "lo -> hi : count"
text = out.decode()
blocks = re.split(r"\n(?=tid = )", text)
theirs = None
for b in blocks:
    m = re.match(r"tid = (\d+)", b.strip())
    if m and int(m.group(1)) == tid:
        theirs = [(int(lo), int(hi), int(c)) for lo, hi, c in
                  re.findall(r"^\s*(\d+)\s*->\s*(\d+)\s*:\s*(\d+)", b, re.M)]
if not theirs:
    sys.exit("runqlat printed nothing for tid %d:\n%s" % (tid, text))
count = sum(c for _, _, c in theirs)
half, seen, med_us = count / 2, 0, None
for lo, hi, c in theirs:
    seen += c
    if seen >= half:
        med_us = (lo + hi) / 2
        break
print("probe: %d waits, median %.1f us;  runqlat: %d waits, median bucket ~%.1f us"
      % (ours["count"], ours["p50_ns"] / 1e3, count, med_us))
assert abs(ours["count"] - count) <= 0.2 * max(count, 1), "counts disagree"
ratio = (ours["p50_ns"] / 1e3 + 0.5) / (med_us + 0.5)
assert 0.25 <= ratio <= 4, "medians disagree: ratio %.2f" % ratio
print("[PASS] probe agrees with runqlat")
