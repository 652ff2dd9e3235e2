#!/usr/bin/env python3
"""The daemon's main-thread CPU while a 10,000-job submit is held for room.

A real dispatchd with store_lag_max = 1024; test/daemon/hold_store holds its
store's LMDB write lock, so that a batch is held (docs/PROTOCOL.md,
"Back-pressure"). Prints the share of a CPU its main thread used over 2 s,
for a batch the fast path decodes and for one only the full decoder takes.
Run from the repository root after a build:  bench/daemon/held_cpu.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "daemon"))
os.environ.setdefault("HOLD_STORE", "build/test/hold_store")
import test_daemon as t  # noqa: E402
from harness import Daemon  # noqa: E402


def cpu_ticks(pid):
    fields = open("/proc/%d/task/%d/stat" % (pid, pid)).read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


for shape, job in (("fast path", {"queue": "dispatchd.noop"}),
                   ("full decoder", {"queue": "dispatchd.noop", "retries": 0})):
    with Daemon(config="store_lag_max = 1024\nsubmit_wait = 30\n") as d, d.client() as a:
        with t.StoreHeld(d):
            t.submit_until_held(a, [job] * 10000)
            t0, c0 = time.time(), cpu_ticks(d.proc.pid)
            time.sleep(2)
            share = (cpu_ticks(d.proc.pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.time() - t0)
        print("%-12s 10,000-job batch held: daemon main thread %3.0f%% of a CPU" % (shape, 100 * share))
