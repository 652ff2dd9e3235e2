#!/usr/bin/env python3
"""bench/peers/table.py DIR ROUNDS: the side-by-side table of bench/peers/run.

Medians over the rounds of each system's figures, then the ratios the targets
are stated in (docs/BENCHMARKS.md): dispatchd / each peer, and each figure / its
physical floor.
Also writes DIR/peers.json with every figure used."""
import json
import os
import platform
import statistics
import sys
import time


def load(d, label, rounds):
    runs = []
    for r in range(1, rounds + 1):
        p = os.path.join(d, f"{label}-{r}.json")
        if os.path.exists(p):
            with open(p) as f:
                runs.append(json.load(f))
    return runs


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def get(run, *path):
    for k in path:
        if not isinstance(run, dict) or k not in run:
            return None
        run = run[k]
    return run


def fmt_rate(v):
    return "—" if v is None else f"{v:,.0f}"


def fmt_us(ns):
    return "—" if ns is None else f"{ns / 1e3:,.0f}" if ns >= 100e3 else f"{ns / 1e3:,.1f}"


def fmt_ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}" if a / b < 10 else f"{a / b:.1f}"


def machine():
    cpus = os.cpu_count()
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpus} vCPU {model}, Linux {platform.release()}"


def main():
    d, rounds = sys.argv[1], int(sys.argv[2])
    rows, report = [], {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
                        "rounds": rounds, "queue": {}, "exec": {}}
    disp = load(d, "dispatchd", rounds)
    floors = [get(r, "floors") for r in disp]
    fsync_p99 = med([get(f, "fsync", "p99_ns") for f in floors])
    stall_p99 = med([get(f, "stall", "p99_ns") for f in floors])
    ct_p99 = med([get(f, "cyclictest", "p99_ns") for f in floors])

    queue = [("dispatchd (fsync)", "dispatchd")] + [
        ("beanstalkd binlog, fsync every 50 ms (default)", "beanstalkd-f50"),
        ("beanstalkd binlog, fsync every write (-f 0)", "beanstalkd-f0"),
        ("redis list, AOF everysec", "redis-everysec"),
        ("redis list, AOF always", "redis-always")]
    figures = {}
    for name, label in queue:
        runs = load(d, label, rounds)
        if label == "dispatchd":
            rate = med([get(r, "dispatches_per_sec") for r in runs])
            ack50 = med([get(r, "durable_ack_ns", "p50") for r in runs])
            ack99 = med([get(r, "durable_ack_ns", "p99") for r in runs])
            job99 = med([get(r, "latency_ns", "p99") for r in runs])
        else:
            rate = med([get(r, "jobs_per_sec") for r in runs])
            ack50 = med([get(r, "batch_ack_ns", "p50") for r in runs])
            ack99 = med([get(r, "batch_ack_ns", "p99") for r in runs])
            job99 = med([get(r, "job_latency_ns", "p99") for r in runs])
        if label != "dispatchd":
            acks = sum(get(r, "batch_ack_ns", "count") or 0 for r in runs)
            window = sum(get(r, "window_batches") or 0 for r in runs)
            unacked = sum(get(r, "unacked_batches") or 0 for r in runs)
        else:
            acks = window = unacked = None
        figures[label] = dict(name=name, runs=len(runs), jobs_per_sec=rate, ack_p50_ns=ack50,
                              ack_p99_ns=ack99, job_p99_ns=job99, acked_batches=acks,
                              window_batches=window, unacked_batches=unacked,
                              all_jobs_per_sec=[get(r, "dispatches_per_sec") or get(r, "jobs_per_sec")
                                                for r in runs])
    report["queue"] = figures
    base = figures["dispatchd"]["jobs_per_sec"]

    print(f"bench/peers  {report['date']}  {report['machine']}")
    print(f"medians of {rounds} round(s); every system in the same run, on loopback, state on /var/tmp")
    print()
    print("queue jobs: 1 producer connection, 8 batches x 1000 jobs in flight, 16-byte payload, 2 consumers")
    print(f"{'system':48} {'jobs/s':>11} {'ack p50 µs':>11} {'ack p99 µs':>11} {'job p99 µs':>11}"
          f" {'dispatchd ÷':>12} {'ack p99 ÷ fsync p99':>20}")
    for label, f in figures.items():
        print(f"{f['name']:48} {fmt_rate(f['jobs_per_sec']):>11} {fmt_us(f['ack_p50_ns']):>11}"
              f" {fmt_us(f['ack_p99_ns']):>11} {fmt_us(f['job_p99_ns']):>11}"
              f" {fmt_ratio(base, f['jobs_per_sec']) if label != 'dispatchd' else '':>12}"
              f" {fmt_ratio(f['ack_p99_ns'], fsync_p99):>20}")
    print(f"{'floors':48} fsync p99 {fmt_us(fsync_p99)} µs (4 KiB write + fdatasync, /var/tmp);"
          f" stall p99 {fmt_us(stall_p99)} µs; cyclictest p99 {fmt_us(ct_p99)} µs")
    print("  ack: a batch's intended send -> its answer (dispatchd and -f 0 / always: after the fsync);"
          " — where none was measured")
    for label, f in figures.items():
        if f["unacked_batches"] or (f["window_batches"] and not f["acked_batches"]):
            print(f"  {f['name']}: {f['acked_batches']} of the window's {f['window_batches']} batches"
                  f" answered in full, {f['unacked_batches']} not within --ack-wait")
    print("  job p99: dispatchd: received -> started (its own histogram); peers: intended send -> a consumer has it")

    ex = [("std-r --kind exec, engine embedded", "exec-embedded"),
          ("dispatchd, exec jobs via its socket", "exec-dispatchd"),
          ("xargs -P 2", "xargs"), ("GNU parallel -j 2", "parallel")]
    spawn = [get(r, "floors", "spawn") for r in load(d, "exec-embedded", rounds)]
    spawn_rate = med([get(s, "per_sec") for s in spawn])
    exf = {}
    for name, label in ex:
        runs = load(d, label, rounds)
        rate = med([get(r, "dispatches_per_sec") if "dispatches_per_sec" in r
                    else get(r, "jobs_per_sec") for r in runs])
        exf[label] = dict(name=name, runs=len(runs), jobs_per_sec=rate)
    report["exec"] = exf
    report["floors"] = dict(fsync_p99_ns=fsync_p99, stall_p99_ns=stall_p99, cyclictest_p99_ns=ct_p99,
                            spawn_per_sec=spawn_rate)
    print()
    print("exec jobs: /bin/true, 2 at a time (dispatchd: its workers)")
    print(f"{'system':48} {'jobs/s':>11} {'÷ spawn floor':>14} {'dispatchd ÷':>12}")
    dbase = exf["exec-dispatchd"]["jobs_per_sec"]
    for label, f in exf.items():
        print(f"{f['name']:48} {fmt_rate(f['jobs_per_sec']):>11} {fmt_ratio(f['jobs_per_sec'], spawn_rate):>14}"
              f" {fmt_ratio(dbase, f['jobs_per_sec']) if label in ('xargs', 'parallel') else '':>12}")
    print(f"{'floor: bare posix_spawn + waitpid loop':48} {fmt_rate(spawn_rate):>11}")
    print()
    bs = figures["beanstalkd-f50"]["jobs_per_sec"]
    rd = figures["redis-everysec"]["jobs_per_sec"]
    for peer, v, target in (("beanstalkd (binlog, default fsync)", bs, 20),
                            ("redis (AOF everysec)", rd, 10)):
        if base and v:
            verdict = "met" if base / v >= target else "NOT met"
            print(f"target: dispatchd ÷ {peer} >= {target}: {base / v:.2f}  {verdict}")
        else:
            print(f"target: dispatchd ÷ {peer} >= {target}: no figure")
    with open(os.path.join(d, "peers.json"), "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
