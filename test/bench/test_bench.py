"""Behaviour tests of the benchmarks (std-r, peer-load, bench/peers/run):
what they count, what they write, and how they refuse bad input. They
check behaviour, not speed: every bound here holds on any machine.
Run one with: test_bench.py --case NAME."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
from harness import Client, Daemon, run_cases  # noqa: E402

STDR = os.environ.get("STDR", "build/bench/std-r/std-r")
PEER_LOAD = os.environ.get("PEER_LOAD", "build/bench/peers/peer-load")
EXEC_RATE = os.environ.get("EXEC_RATE", "build/bench/exec/exec-rate")
SOURCE = os.environ.get("SOURCE_ROOT", os.path.join(HERE, "..", ".."))

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def run(*args, code=0, timeout=180, env=None):
    r = subprocess.run(list(args), capture_output=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    assert r.returncode == code, "%s: exit %d (want %d)\nstdout: %s\nstderr: %s" % (
        " ".join(args), r.returncode, code, r.stdout.decode(), r.stderr.decode())
    return r.stdout.decode(), r.stderr.decode()


def tmpdir():
    return tempfile.mkdtemp(prefix="dd-bench-", dir="/var/tmp")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited %d" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on %d" % port)


# ---- std-r ---------------------------------------------------------------------

@case
def open_loop_counts_every_intended_job():
    """At a fixed offered rate every job intended inside the window is
    measured once, whatever the machine does: rate x duration samples."""
    d = tmpdir()
    try:
        j, plots = os.path.join(d, "r.json"), os.path.join(d, "plots")
        out, err = run(STDR, "--rate", "20000", "--duration", "1", "--warmup", "0.3",
                       "--floor", "0.2", "--json", j, "--plot-dir", plots)
        r = json.load(open(j))
        assert r["mode"] == "embedded" and r["kind"] == "noop", r
        assert r["offered_rate"] == 20000, r
        assert abs(r["samples"] - 20000) <= 2, r["samples"]
        assert r["failed"] == 0, r
        lat = r["latency_ns"]
        assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"], lat
        fl = r["floors"]
        assert fl["stall"]["cpus"] >= 1 and fl["stall"]["p99_ns"] > 0, fl
        assert "cyclictest" in fl and ("p99_ns" in fl["cyclictest"] or "unavailable" in fl["cyclictest"]), fl
        if os.cpu_count() >= 2:
            assert fl["handoff"]["p50_ns"] > 0, fl
        assert r["probe"]["status"] in ("loaded", "unavailable"), r["probe"]
        assert "dispatch latency" in out and "stall floor" in out, out
        svg = open(os.path.join(plots, "latency.svg")).read()
        assert "<svg" in svg and "dispatch" in svg, svg[:200]
        # progress: one line per second of the run, with the P99 so far
        assert "p99" in err and "so far" in err, err
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def sweep_finds_best_rate_under_bound():
    d = tmpdir()
    try:
        j, plots = os.path.join(d, "s.json"), os.path.join(d, "plots")
        out, _ = run(STDR, "-q", "--sweep", "10000:30000:10000", "--duration", "0.3",
                     "--warmup", "0.1", "--floor", "0", "--p99-bound", "30s", "--json", j,
                     "--plot-dir", plots)
        r = json.load(open(j))
        s = r["sweep"]
        assert s["p99_bound_ns"] == 30 * 10**9
        steps = s["steps"]
        assert [st["offered_rate"] for st in steps] == [10000, 20000, 30000][:len(steps)], s
        assert len(steps) == 3 or s["stopped_early"], s
        # which steps meet the bound is this machine's business; the best is
        # the highest that did, and the top-level run is that step
        met = [st["offered_rate"] for st in steps if st["under_bound"]]
        assert s["best_rate_under_bound"] == (max(met) if met else None), s
        if met:
            assert r["offered_rate"] == max(met), r["offered_rate"]
            assert "best rate under the bound  %d" % max(met) in out, out
        else:
            assert "best rate under the bound  none" in out, out
        for st in steps:
            assert st["dispatches_per_sec"] > 0 and st["failed"] == 0, st
            lat = st["latency_ns"]
            assert 0 < lat["p50"] <= lat["p99"] <= lat["max"], lat
        assert "<svg" in open(os.path.join(plots, "sweep.svg")).read()
        assert "<svg" in open(os.path.join(plots, "latency.svg")).read()
        # a bound nothing meets: no best rate, every step run (a P99 over
        # the bound may be noise; a higher rate may still meet it)
        run(STDR, "-q", "--sweep", "10000:30000:10000", "--duration", "0.2", "--warmup", "0",
            "--floor", "0", "--p99-bound", "1ns", "--json", j)
        s = json.load(open(j))["sweep"]
        assert s["best_rate_under_bound"] is None and not s["stopped_early"], s
        assert len(s["steps"]) == 3 and not any(st["under_bound"] for st in s["steps"]), s
        # processes at 20,000/s and more on one worker: the sweep stops after
        # two steps in a row that did not keep up, if this machine has them
        run(STDR, "-q", "--kind", "exec", "--workers", "1", "--sweep", "20000:60000:20000",
            "--duration", "0.1", "--warmup", "0", "--floor", "0", "--json", j)
        s = json.load(open(j))["sweep"]
        steps = s["steps"]
        assert [st["offered_rate"] for st in steps] == [20000, 40000, 60000][:len(steps)], s
        kept_up = [st.get("dispatches_per_sec", 0) >= 0.95 * st["offered_rate"] for st in steps]
        if s["stopped_early"]:
            assert len(steps) == 2 and kept_up == [False, False], s
        else:
            assert len(steps) == 3 and kept_up[:2] != [False, False], s
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def lookup_and_exec_kinds():
    d = tmpdir()
    try:
        j = os.path.join(d, "l.json")
        run(STDR, "-q", "--kind", "lookup", "--jobs-in-state", "500", "--durability", "fsync",
            "--rate", "5000", "--duration", "0.3", "--warmup", "0.1", "--floor", "0",
            "--json", j, env={"TMPDIR": d})
        r = json.load(open(j))
        assert r["kind"] == "lookup" and r["jobs_in_state"] == 500, r
        # every job read another's record from the store, and found it
        assert r["lookups"]["count"] >= 1500 and r["lookups"]["not_found"] == 0, r
        assert r["durable_ack_ns"]["count"] > 0, r
        run(STDR, "-q", "--kind", "exec", "--rate", "100", "--duration", "0.5", "--warmup",
            "0.1", "--floor", "0.2", "--json", j)
        r = json.load(open(j))
        assert r["kind"] == "exec" and r["failed"] == 0 and r["dispatches_per_sec"] > 0, r
        assert r["floors"]["spawn"]["per_sec"] > 0, r["floors"]
        run(STDR, "-q", "--kind", "exec", "--cmd", "/bin/false", "--rate", "100", "--duration",
            "0.3", "--warmup", "0", "--floor", "0", "--json", j)
        assert json.load(open(j))["failed"] > 0  # a failing command is counted, not hidden
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def store_retention_is_reported():
    d = tmpdir()
    try:
        j = os.path.join(d, "s.json")
        common = ["-q", "--rate", "2000", "--duration", "0.2", "--warmup", "0.1", "--floor",
                  "0", "--json", j]
        out, _ = run(STDR, "--durability", "fsync", *common, env={"TMPDIR": d})
        assert json.load(open(j))["store_retain"] == 0  # the default: none kept
        assert "store keeps" in out and " 0 ended jobs per shard" in out, out
        run(STDR, "--durability", "fsync", "--store-retain", "1000", *common,
            env={"TMPDIR": d})
        assert json.load(open(j))["store_retain"] == 1000
        run(STDR, "--durability", "none", *common)
        assert "store_retain" not in json.load(open(j))  # no store at all
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def via_daemon_started_and_at_socket():
    d = tmpdir()
    try:
        j = os.path.join(d, "v.json")
        run(STDR, "-q", "--via-daemon", "--batch", "100", "--depth", "2", "--duration", "0.5",
            "--warmup", "0.2", "--floor", "0", "--payload", "16", "--json", j,
            env={"TMPDIR": d})
        r = json.load(open(j))
        assert r["mode"] == "via-daemon" and r["durability"] == "fsync", r
        assert r["dispatches_per_sec"] > 0 and r["failed"] == 0 and r["daemon"] == "exit 0", r
        assert r["durable_ack_ns"]["jobs_per_ack"] == 100, r
        with Daemon() as dd:
            run(STDR, "-q", "--via-daemon", "--socket", dd.sock, "--rate", "2000", "--batch",
                "10", "--duration", "1", "--warmup", "1", "--floor", "0", "--json", j)
            r = json.load(open(j))
            # open loop at 2,000 jobs/s for a 1 s window after a 1 s warm-up:
            # the window counts its own dispatches, not the warm-up's (4,000
            # by the end); how many of its 2,000 ran is the machine's speed,
            # which the benchmark reports and this test does not judge
            assert r["offered_rate"] == 2000 and r["failed"] == 0, r
            assert 0 < r["samples"] <= 3000 and "daemon" not in r, r
            assert r["dispatches_per_sec"] == r["samples"] / r["duration_s"], r
            # the daemon std-r did not start is left running
            with Client(dd.sock) as c:
                assert c.call("ping")["ok"]
            assert dd.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def bad_options_refused():
    for args, says in [
        (["--sweep", "5:1:1"], "--sweep"),
        (["--sweep", "1:2"], "--sweep"),
        (["--kind", "sleep"], "--kind"),
        (["--p99-bound", "fast"], "--p99-bound"),
        (["--kind", "lookup", "--jobs-in-state", "0"], "jobs-in-state"),
        (["--via-daemon", "--kind", "lookup"], "embedded only"),
        (["--socket", "/tmp/x"], "--via-daemon"),
        (["--payload", "-1"], "--payload"),
        (["--rate", "0"], "--rate"),
        (["--store-retain", "-1"], "--store-retain"),
        (["--via-daemon", "--store-retain", "5"], "--store-retain"),
    ]:
        _, err = run(STDR, *args, code=2)
        assert says in err, (args, err)
    _, err = run(STDR, "--via-daemon", "--socket", "/nonexistent/sock", "--floor", "0",
                 "--duration", "0.1", code=1)
    assert "cannot connect" in err, err


# ---- peers -------------------------------------------------------------------

@case
def exec_rate_with_an_environment():
    """exec-rate --env-vars runs the daemon loop with and without the
    variables in every round and reports both and their ratio; it refuses
    --env-vars without the daemon."""
    out, err = run(EXEC_RATE, "--via-daemon", "--env-vars", "50", "--rounds", "2",
                   "--seconds", "0.3")
    assert "via dispatchd,   50 vars  median" in out and "with vars / without" in out, out
    rounds = [l for l in err.splitlines() if "daemon with 50 variables" in l]
    assert len(rounds) == 2, err
    for l in rounds:  # every loop ran jobs to their end
        rates = [float(w.rstrip("/s,")) for w in l.split() if w.endswith("/s,") or w.endswith("/s")]
        assert len(rates) == 4 and min(rates) > 0, l
    assert "failed jobs" not in out, out
    run(EXEC_RATE, "--env-vars", "5", "--rounds", "1", code=2)


@case
def adopt_takes_over_every_running_job():
    """bench/exec/adopt.py kills a daemon under running jobs, starts it
    again and checks each job is running in its first attempt with the
    same pid (it raises otherwise); it reports both times."""
    dispatchd = os.environ.get("DISPATCHD", "build/daemon/dispatchd")
    out, err = run(sys.executable, os.path.join(SOURCE, "bench", "exec", "adopt.py"), "--jobs", "20",
                   "--rounds", "2", "--dispatchd", dispatchd, timeout=300)
    assert "adopt  20 running process jobs" in out and "restart to answering" in out, out
    assert err.count("20 running jobs taken over") == 2, err
    run(sys.executable, os.path.join(SOURCE, "bench", "exec", "adopt.py"), "--jobs", "0", code=2)


def need(*tools):
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        raise AssertionError("missing %s: scripts/setup installs them" % ", ".join(missing))


@case
def peer_load_against_beanstalkd_and_redis():
    need("beanstalkd", "redis-server")
    d = tmpdir()
    procs = []
    try:
        bp, rp = free_port(), free_port()
        os.mkdir(os.path.join(d, "binlog"))
        procs.append(subprocess.Popen(["beanstalkd", "-l", "127.0.0.1", "-p", str(bp), "-b",
                                       os.path.join(d, "binlog")], stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(["redis-server", "--port", str(rp), "--bind", "127.0.0.1",
                                       "--dir", d, "--save", "", "--appendonly", "yes",
                                       "--appendfsync", "everysec"], stdout=subprocess.DEVNULL))
        wait_port(bp, procs[0])
        wait_port(rp, procs[1])
        for proto, port in (("--beanstalkd", bp), ("--redis", rp)):
            j = os.path.join(d, "p.json")
            run(PEER_LOAD, proto, "--port", str(port), "--batch", "50", "--depth", "2",
                "--duration", "0.5", "--warmup", "0.2", "--json", j)
            r = json.load(open(j))
            # every job produced was consumed, exactly once
            assert r["errors"] == 0 and r["produced"] == r["consumed"] > 0, r
            assert r["jobs_per_sec"] > 0 and r["batch_ack_ns"]["count"] > 0, r
            assert r["job_latency_ns"]["count"] > 0, r
        # nothing listening: a clear refusal
        _, err = run(PEER_LOAD, "--redis", "--port", str(free_port()), "--duration", "0.1",
                     code=1)
        assert "cannot connect" in err, err
        _, err = run(PEER_LOAD, "--port", "1", code=2)  # no protocol named
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


@case
def peers_run_quick():
    """bench/peers/run end to end, shortened: every system ran and the table
    has its ratios and the targets' verdicts."""
    need("beanstalkd", "redis-server", "parallel", "cyclictest")
    d = tmpdir()
    try:
        out, err = run(os.path.join(SOURCE, "bench", "peers", "run"), "--quick", "--out", d,
                       timeout=600)
        rep = json.load(open(os.path.join(d, "peers.json")))
        for k in ("dispatchd", "beanstalkd-f50", "beanstalkd-f0", "redis-everysec", "redis-always"):
            assert rep["queue"][k]["runs"] == 1 and rep["queue"][k]["jobs_per_sec"], (k, rep["queue"][k])
        for k in ("exec-embedded", "exec-dispatchd", "xargs", "parallel"):
            assert rep["exec"][k]["jobs_per_sec"] > 0, (k, rep["exec"][k])
        assert rep["floors"]["fsync_p99_ns"] > 0 and rep["floors"]["spawn_per_sec"] > 0, rep["floors"]
        assert "target: dispatchd ÷ beanstalkd" in out and "target: dispatchd ÷ redis" in out, out
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_cases(CASES, "bench"))
