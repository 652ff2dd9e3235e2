"""dispatchd integration tests: every case starts a real daemon and talks
to it like a user would. Run one with: test_daemon.py --case NAME."""
import base64
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DISPATCHCTL, Client, Daemon, Skip, gone, run_cases, supervisors,  # noqa: E402
                     until)

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


# ---- every operation -------------------------------------------------------

@case
def every_operation():
    with Daemon() as d, d.client() as c:
        assert c.ok("ping")["pong"] is True
        st = os.stat(d.sock)
        assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
        jid = c.ok("submit", argv=["sh", "-c", "echo hi; echo there >&2"], queue="q1")["id"]
        job = c.wait(jid)
        assert job["state"] == "succeeded" and job["exit_code"] == 0 and job["queue"] == "q1", job
        assert c.ok("get", id=jid)["job"]["id"] == jid
        out = c.ok("output", id=jid)
        assert base64.b64decode(out["data"]) == b"hi\n" and out["eof"], out
        assert base64.b64decode(c.ok("output", id=jid, stream="stderr")["data"]) == b"there\n"
        assert base64.b64decode(c.ok("output", id=jid, offset=1, max=1)["data"]) == b"i"
        ids = c.ok("submit_batch", jobs=[{"argv": ["true"]}, {"argv": ["false"]},
                                        {"argv": ["sleep", "30"], "priority": "low"}])["ids"]
        assert len(ids) == 3
        jobs = c.ok("wait", ids=ids[:2], timeout=30)["jobs"]
        assert [j["state"] for j in jobs] == ["succeeded", "failed"], jobs
        until(lambda: c.ok("get", id=ids[2])["job"]["state"] == "running", what="sleep running")
        res = c.ok("cancel", id=ids[2])
        assert c.wait(ids[2])["state"] == "cancelled"
        lst = c.ok("list", state="succeeded")
        assert {jid, ids[0]} <= {j["id"] for j in lst["jobs"]}, lst
        assert all(j["state"] == "succeeded" for j in lst["jobs"])
        assert {j["id"] for j in c.ok("list", queue="q1")["jobs"]} == {jid}
        page = c.ok("list", limit=2)
        assert len(page["jobs"]) == 2 and page["next"] == page["jobs"][-1]["id"]
        rest = c.ok("list", after=page["next"], limit=1000)
        assert rest["next"] is None and len(rest["jobs"]) == 2, rest
        # external workers
        w = c.ok("submit", queue="work", payload="data-1", retries=2)["id"]
        lease = c.ok("reserve", queue="work", ttr=10)["job"]
        assert lease["id"] == w and lease["payload"] == "data-1" and lease["attempt"] == 1
        c.ok("touch", id=w, attempt=1, ttr=10)
        c.ok("nack", id=w, attempt=1)
        lease = until(lambda: c.ok("reserve", queue="work")["job"], what="retry")
        assert lease["attempt"] == 2
        c.ok("ack", id=w, attempt=2)
        assert c.wait(w)["state"] == "succeeded"
        assert c.ok("reserve", queue="work")["job"] is None
        b = c.ok("submit", queue="bin", payload_b64=base64.b64encode(b"\xff\x00\x01").decode())["id"]
        lease = c.ok("reserve", queue="bin")["job"]
        assert lease["id"] == b and base64.b64decode(lease["payload_b64"]) == b"\xff\x00\x01"
        win = c.ok("stats", window=True)  # the first window: since start
        assert win["total"]["submitted"] == 6 and win["window_s"] > 0, win
        assert c.ok("stats", window=True)["total"]["submitted"] == 0, "nothing since"
        st = c.ok("stats")
        assert st["total"]["submitted"] == 6 and st["daemon"]["connections"] >= 1, st
        assert "dispatch" in st["total"]["latency"], st
        # counters alone, for a client that polls: the same counts, no summaries
        lean = c.ok("stats", latency=False)
        assert lean["total"]["submitted"] == 6 and lean["total"]["succeeded"] == st["total"]["succeeded"], lean
        assert "latency" not in lean["total"] and "latency" not in lean["shards"][0], lean
        assert lean["probe"]["status"] == "not read", lean
        c.err("stats", "EINVAL", window=True, latency=False)
        # watch: a stream of changes, each with the watch's tag
        with d.client() as w2:
            tag = w2.send("watch")
            assert w2.recv(tag)["ok"]
            j2 = c.ok("submit", argv=["true"])["id"]
            c.wait(j2)
            states = []
            while "succeeded" not in states:
                m = w2.line()
                assert m["tag"] == tag, m
                if m["event"]["id"] == j2:
                    states.append(m["event"]["state"])
            assert states[0] in ("queued", "running") and states[-1] == "succeeded", states
            w2.ok("unwatch")
        # a watch of one queue sees only its jobs
        with d.client() as w3:
            tag = w3.send("watch", queue="watched")
            assert w3.recv(tag)["ok"]
            other = c.ok("submit", argv=["true"], queue="unwatched")["id"]
            c.wait(other)
            mine = c.ok("submit", argv=["true"], queue="watched")["id"]
            c.wait(mine)
            seen = set()
            while True:
                m = w3.line()
                seen.add(m["event"]["id"])
                if m["event"]["id"] == mine and m["event"]["state"] == "succeeded":
                    break
            assert seen == {mine}, seen
        assert c.ok("drain")["draining"]
        rc = d.stop()
        assert rc == 0, (rc, d.logtext())


@case
def pipelining():
    with Daemon() as d, d.client() as c:
        n = 1000
        payload = b"".join(json.dumps({"op": "submit", "queue": "p", "payload": str(i), "tag": i,
                                       "durability": "fsync"}).encode() + b"\n" for i in range(n))
        payload += b'{"op":"ping","tag":"last"}\n'
        c.send_raw(payload)
        seen = {}
        while len(seen) < n + 1:
            m = c.line()
            seen[m["tag"]] = m
        assert all(seen[i]["ok"] for i in range(n))
        ids = [seen[i]["result"]["id"] for i in range(n)]
        assert len(set(ids)) == n
        # the engine numbers them in the order they were sent
        assert ids == sorted(ids)


@case
def submit_batch_fast_path():
    """Plain batches take daemon/fastsub.c, the rest the full decoder: the
    same jobs and the same answers either way, byte for byte."""
    with Daemon(config="max_batch = 3\nmax_jobs_per_user = 8\n") as d, d.client() as c:
        fast = (b'{"op":"submit_batch","tag":7,"jobs":[{"queue":"fq","payload":"abc",'
                b'"priority":"high","key":"k-1"},{"queue":"fq","payload":"","durability":"none"},{}]}')
        full = fast.replace(b'"abc"', b'"a\\u0062c"').replace(b'"k-1"', b'"k-2"')
        full = full.replace(b'"tag":7', b'"tag":8')
        answers = []
        for line in (fast, full):
            c.send_raw(line + b"\n")
            answers.append(c.raw_line())
        f, g = (json.loads(a) for a in answers)
        assert f["ok"] and g["ok"] and len(f["result"]["ids"]) == 3, answers
        ids = f["result"]["ids"] + g["result"]["ids"]
        assert answers[0] == b'{"tag":7,"ok":true,"result":{"ids":[%s]}}' % (
            b",".join(b"%d" % i for i in ids[:3])), answers[0]
        assert answers[1] == b'{"tag":8,"ok":true,"result":{"ids":[%s]}}' % (
            b",".join(b"%d" % i for i in ids[3:])), answers[1]
        for a, b in ((ids[0], ids[3]), (ids[1], ids[4]), (ids[2], ids[5])):
            ja, jb = c.ok("get", id=a)["job"], c.ok("get", id=b)["job"]
            for k in ("queue", "priority", "state", "attempt"):
                assert ja[k] == jb[k], (k, ja, jb)
        assert c.ok("get", id=ids[0])["job"]["priority"] == "high"
        assert c.ok("get", id=ids[2])["job"]["queue"] == "default"
        leased = [c.ok("reserve", queue="fq")["job"] for _ in range(4)]
        assert sorted(j["payload"] for j in leased) == ["", "", "abc", "abc"], leased
        # a known key answers with its first job's id, through the fast path
        # too, and is not counted against the owner's limit a second time
        for _ in range(3):
            c.send_raw(b'{"op":"submit_batch","tag":"again","jobs":[{"queue":"fq","key":"k-1"}]}\n')
            assert c.raw_line() == b'{"tag":"again","ok":true,"result":{"ids":[%d]}}' % ids[0]
        # a new key twice in one batch: one job, counted once
        c.send_raw(b'{"op":"submit_batch","tag":"twice","jobs":[{"queue":"fq","key":"k-3"},'
                   b'{"queue":"fq","key":"k-3"}]}\n')
        twice = c.line()["result"]["ids"]
        assert len(twice) == 2 and twice[0] == twice[1], twice
        # the fast path's jobs meet the same limits: 7 of 8 unfinished now
        c.send_raw(b'{"op":"submit_batch","tag":1,"jobs":[{},{},{},{}]}\n')
        m = c.line()
        assert not m["ok"] and m["error"]["code"] == "E2BIG" and m["tag"] == 1, m
        c.send_raw(b'{"op":"submit_batch","tag":3,"jobs":[{"priority":9}]}\n')
        m = c.line()
        assert not m["ok"] and m["error"]["code"] == "EINVAL" and "jobs[0]" in m["error"]["message"], m
        c.send_raw(b'{"op":"submit_batch","tag":2,"jobs":[{}]}\n')
        assert c.line()["ok"]
        c.send_raw(b'{"op":"submit_batch","tag":2,"jobs":[{}]}\n')
        m = c.line()
        assert not m["ok"] and m["error"]["code"] == "EAGAIN" and m["tag"] == 2, m


HOLD_STORE = os.environ.get("HOLD_STORE", "build/test/hold_store")


def answered_within(c, seconds):
    """The next line from @c if one comes within @seconds, else None."""
    c.s.settimeout(seconds)
    try:
        return c.line()
    except socket.timeout:
        return None
    finally:
        c.s.settimeout(30)


class StoreHeld:
    """hold_store on @d's store: its applier cannot commit until exit."""

    def __init__(self, d):
        self.store = os.path.join(d.state, "shard-0", "store")

    def __enter__(self):
        self.h = subprocess.Popen([HOLD_STORE, self.store], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        assert self.h.stdout.readline() == b"held\n", "the store's write lock is ours"
        return self

    def __exit__(self, *exc):
        self.h.stdin.close()
        self.h.wait()


def submit_until_held(c, jobs):
    """Batches go in until the log is far ahead of the store; returns the
    tag of the first one left unanswered (held)."""
    for _ in range(20):
        tag = c.send("submit_batch", jobs=jobs)
        m = answered_within(c, 1.0)
        if m is None:
            return tag
        assert m["ok"] and m["tag"] == tag, m
    raise AssertionError("no batch was held")


@case
def submit_held_for_the_store():
    """A submit the engine has no room for (its store held far behind the
    log) waits without stalling other clients and without reading its own
    connection further, goes in once the store moves, is refused with
    EAGAIN when the wait passes submit_wait, and with ESHUTDOWN at a drain."""
    jobs = [{"queue": "dispatchd.noop"}] * 3000
    with Daemon(config="store_lag_max = 1024\nsubmit_wait = 30\n") as d, \
            d.client() as a, d.client() as b:
        with StoreHeld(d):
            held = submit_until_held(a, jobs)
            ping = a.send("ping")
            # The other client is served meanwhile. An event loop that
            # waited for room would answer it only after submit_wait (30 s),
            # when the held submit ends with EAGAIN: then @a would have an
            # answer below. No clock needed.
            for _ in range(3):
                assert b.ok("ping")["pong"]
            assert answered_within(a, 0.3) is None, "the held connection answers nothing yet"
        # a submit is answered once durable, so the ping may come first
        got = {m["tag"]: m for m in (a.line(), a.line())}
        assert set(got) == {held, ping}, got
        assert got[held]["ok"] and len(got[held]["result"]["ids"]) == 3000, got[held]
        assert got[ping]["ok"], got[ping]
    # the wait has a limit: past it, EAGAIN
    with Daemon(config="store_lag_max = 1024\nsubmit_wait = 0.3\n") as d, d.client() as a:
        with StoreHeld(d):
            refused = None
            for _ in range(20):
                m = a.call("submit_batch", jobs=jobs)
                if not m["ok"]:
                    refused = m
                    break
            assert refused and refused["error"]["code"] == "EAGAIN", refused
            cut = refused["error"].get("submitted", {"ids": []})["ids"]
            assert len(cut) < len(jobs), refused  # some may have gone in before the limit
            assert a.ok("ping")["pong"], "the connection goes on"
        # The store catches up on its lag first (slow under a sanitizer):
        # until then a submit may still pass submit_wait and get EAGAIN.
        def submits_again():
            m = a.call("submit_batch", jobs=jobs[:10])
            assert m["ok"] or m["error"]["code"] == "EAGAIN", m
            return m["ok"] and m["result"]["ids"]
        until(submits_again, timeout=60, what="a submit once the store moves")
    # a drain refuses what is still held, and says so before it closes
    with Daemon(config="store_lag_max = 1024\nsubmit_wait = 30\n") as d, d.client() as a:
        with StoreHeld(d):
            held = submit_until_held(a, jobs)
            d.send_signal(signal.SIGTERM)
            # the engine's stop waits for the store: let it go once the stop began
            until(lambda: ": stopping" in d.logtext(), what="the stop")
        m = a.line()
        assert m is not None and m["tag"] == held and not m["ok"], m
        assert m["error"]["code"] == "ESHUTDOWN", m
        assert d.stop() == 0


@case
def thousand_connections():
    with Daemon() as d:
        conns = [d.client() for _ in range(1000)]
        try:
            for i, c in enumerate(conns):
                c.send("submit", queue="many", payload=str(i))
            ids = set()
            for c in conns:
                m = c.recv(c.tag)
                assert m["ok"], m
                ids.add(m["result"]["id"])
            assert len(ids) == 1000
            for c in conns:
                c.send("ping")
            for c in conns:
                assert c.recv(c.tag)["ok"]
            st = conns[0].ok("stats")
            assert st["daemon"]["connections"] == 1000, st["daemon"]
        finally:
            for c in conns:
                c.close()


@case
def lease_expiry():
    with Daemon() as d, d.client() as c:
        jid = c.ok("submit", queue="ext", payload="x", retries=1, backoff=0.01)["id"]
        lease = c.ok("reserve", queue="ext", ttr=0.2)["job"]
        assert lease["attempt"] == 1
        # the lease runs out: the job is queued again
        job = until(lambda: (lambda j: j if j["state"] == "queued" else None)(c.ok("get", id=jid)["job"]))
        assert job["reason"] == "lease expired", job
        c.err("ack", "ESTALE", id=jid, attempt=1)
        # a reserve that waits is answered when the job is back
        lease = c.ok("reserve", queue="ext", ttr=5, timeout=5)["job"]
        assert lease["attempt"] == 2
        c.err("ack", "ESTALE", id=jid, attempt=1)
        c.ok("ack", id=jid, attempt=2)
        assert c.wait(jid)["state"] == "succeeded"
        # no attempt left: an expired lease fails the job
        j2 = c.ok("submit", queue="ext")["id"]
        c.ok("reserve", queue="ext", ttr=0.1)
        job = c.wait(j2)
        assert job["state"] == "failed" and job["reason"] == "lease expired", job
        # a reserve with a timeout and nothing to take answers null in time
        t0 = time.time()
        assert c.ok("reserve", queue="ext", timeout=0.3)["job"] is None
        assert 0.25 < time.time() - t0 < 5


@case
def process_jobs():
    with Daemon("--config", "/dev/null") as d, d.client() as c:
        j = c.ok("submit", argv=["sh", "-c", "exit 7"])["id"]
        job = c.wait(j)
        assert job["state"] == "failed" and job["exit_code"] == 7 and job["reason"] == "exit 7", job
        j = c.ok("submit", argv=["sh", "-c", "kill -TERM $$"])["id"]
        job = c.wait(j)
        assert job["signal"] == 15 and job["exit_code"] is None, job
        j = c.ok("submit", argv=["/nonexistent/binary"])["id"]
        job = c.wait(j)
        assert job["state"] == "failed" and job["exit_code"] == 127, job
        assert job["reason"] == "/nonexistent/binary: No such file or directory", job
        j = c.ok("submit", argv=["sleep", "30"], timeout=0.2)["id"]
        job = c.wait(j)
        assert job["state"] == "timed_out" and job["signal"] == 15, job
        j = c.ok("submit", argv=["sleep", "30"])["id"]
        until(lambda: c.ok("get", id=j)["job"]["state"] == "running")
        c.ok("cancel", id=j)
        job = c.wait(j)
        assert job["state"] == "cancelled" and job["signal"] == 15, job
        j = c.ok("submit", argv=["sh", "-c", "echo $FOO; pwd"], env={"FOO": "bar"}, cwd="/tmp",
                 output_max=6)["id"]
        c.wait(j)
        # past output_max: the head and the tail, and a marker between
        got = base64.b64decode(c.ok("output", id=j)["data"])
        assert got == b"bar\n[dispatchd: 3 bytes cut here]\nmp\n", (got, c.ok("get", id=j))
        j = c.ok("submit", argv=["sh", "-c", "ulimit -n"], rlimits={"nofile": 99})["id"]
        c.wait(j)
        assert base64.b64decode(c.ok("output", id=j)["data"]) == b"99\n"
        # dispatchctl run: output streamed, its exit code passed on
        r = d.ctl("run", "--", "sh", "-c", "echo out; echo err >&2; exit 4", check=4)
        assert r.stdout == b"out\n" and r.stderr == b"err\n", r
        r = d.ctl("run", "--", "sh", "-c", "kill -KILL $$", check=128 + 9)
        d.ctl("run", "--", "true", check=0)


@case
def output_attempts_and_cut():
    """Each attempt's output is kept (`output --attempt N`), output past
    output_max keeps its head and tail, and `get` says how much was cut."""
    out = tempfile.mkdtemp(prefix="dd-out-")
    try:
        with Daemon("--output-dir", out, "--output-reserve", "0") as d, d.client() as c:
            flag = os.path.join(d.dir, "n")
            script = ('n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s; '
                      'echo try $n; [ $n -ge 3 ]' % (flag, flag))
            jid = c.ok("submit", argv=["sh", "-c", script], retries=2, backoff=0.01)["id"]
            job = c.wait(jid)
            assert job["state"] == "succeeded" and job["attempt"] == 3, job
            assert "output_cut" not in job, job
            for a in (1, 2, 3):
                r = c.ok("output", id=jid, attempt=a)
                assert base64.b64decode(r["data"]) == b"try %d\n" % a and r["eof"], r
                assert r["attempt"] == a, r
                assert os.path.exists(os.path.join(out, "%d.%d.out" % (jid, a)))
            assert base64.b64decode(c.ok("output", id=jid)["data"]) == b"try 3\n"
            assert c.call("output", id=jid, attempt=4)["error"]["code"] == "EINVAL"
            r = d.ctl("output", "--attempt", "2", str(jid), check=0)
            assert r.stdout == b"try 2\n", r
            assert d.ctl("output", str(jid), check=0).stdout == b"try 3\n"
            d.ctl("output", "--attempt", "0", str(jid), check=2)
            # past the cap: head, marker, tail; counted in the job
            j = c.ok("submit", argv=["sh", "-c", "echo HEAD; seq 1 100000; echo TAIL; "
                                     "echo E1 >&2; seq 1 50000 >&2"],
                     output_max=4096)["id"]
            job = c.wait(j)
            cut = job["output_cut"]
            assert cut["stdout"] > 0 and cut["stderr"] > 0, job
            data = base64.b64decode(c.ok("output", id=j, max=1 << 20)["data"])
            assert data.startswith(b"HEAD\n") and data.endswith(b"\n100000\nTAIL\n"), data[-40:]
            assert b"\n[dispatchd: %d bytes cut here]\n" % cut["stdout"] in data, data
            r = d.ctl("get", str(j), check=0)
            assert b"cut: %d bytes of stdout, %d of stderr" % (cut["stdout"], cut["stderr"]) \
                in r.stdout, r.stdout
            assert json.loads(d.ctl("--json", "get", str(j), check=0).stdout)["job"]["output_cut"] == cut
    finally:
        shutil.rmtree(out, ignore_errors=True)


@case
def dispatchctl_commands():
    with Daemon() as d:
        jid = d.ctl("submit", "--queue", "cli", "--retries", "1", "--", "true", check=0).stdout.strip()
        assert jid.isdigit()
        r = d.ctl("wait", jid.decode(), check=0)
        assert b"succeeded" in r.stdout
        bad = d.ctl("submit", "--", "false", check=0).stdout.strip().decode()
        d.ctl("wait", bad, check=1)
        r = d.ctl("--json", "get", jid.decode(), check=0)
        assert json.loads(r.stdout)["job"]["state"] == "succeeded"
        r = d.ctl("list", "--state", "failed", check=0)
        listed = [ln.split()[0] for ln in r.stdout.decode().splitlines()[1:]]
        assert bad in listed and jid.decode() not in listed, r.stdout
        delayed = d.ctl("submit", "--delay", "100", "--", "true", check=0).stdout.strip().decode()
        after = d.ctl("submit", "--after", delayed, "--", "true", check=0).stdout.strip().decode()
        d.ctl("cancel", delayed, check=0)
        r = d.ctl("wait", after, check=1)
        assert b"dependency" in r.stdout
        d.ctl("cancel", delayed, check=1)  # already ended
        r = d.ctl("output", jid.decode(), check=0)
        d.ctl("stats", check=0)
        assert b"alive" in d.ctl("ping", check=0).stdout
        d.ctl("get", "notanumber", check=2)
        d.ctl("frobnicate", check=2)
        d.ctl("submit", check=2)
        d.ctl("get", "999999", check=1)
        r = d.ctl("-s", "/nonexistent/sock", "ping", check=1)
        assert b"is dispatchd running" in r.stderr


# ---- restarts ----------------------------------------------------------------

@case
def restart_with_jobs_in_every_state():
    d = Daemon(config="[dispatchd]\nshutdown_grace = 0.5\n")
    with d:
        with d.client() as c:
            ok = c.ok("submit", argv=["true"])["id"]
            bad = c.ok("submit", argv=["false"])["id"]
            cancelled = c.ok("submit", argv=["true"], delay=100)["id"]
            c.ok("cancel", id=cancelled)
            timed = c.ok("submit", argv=["sleep", "10"], timeout=0.1)["id"]
            for j in (ok, bad, cancelled, timed):
                c.wait(j)
            delayed = c.ok("submit", argv=["true"], delay=3600)["id"]
            waiting = c.ok("submit", argv=["true"], after=[delayed])["id"]
            queued = c.ok("submit", queue="nobody-serves", payload="p")["id"]
            running = c.ok("submit", argv=["sleep", "60"], retries=1)["id"]
            until(lambda: c.ok("get", id=running)["job"]["state"] == "running")
        assert d.stop() == 0
        d.start()
        with d.client() as c:
            want = {ok: "succeeded", bad: "failed", cancelled: "cancelled", timed: "timed_out",
                    delayed: "delayed", waiting: "waiting", queued: "queued"}
            for j, s in want.items():
                got = c.ok("get", id=j)["job"]
                assert got["state"] == s, (j, s, got)
            job = c.ok("get", id=running)["job"]
            # it was running at the stop, and runs on: taken over, not retried
            assert job["attempt"] == 1 and job["state"] == "running", job
            lease = c.ok("reserve", queue="nobody-serves")["job"]
            assert lease["id"] == queued and lease["payload"] == "p"
            c.ok("cancel", id=running)


@case
def sigkill_under_load():
    d = Daemon()
    acked = []
    stop = threading.Event()
    errors = []

    def submitter(k):
        try:
            with d.client() as c:
                while not stop.is_set():
                    jobs = [{"queue": "load", "payload": "%d-%d" % (k, i)} for i in range(200)]
                    m = c.call("submit_batch", jobs=jobs)
                    if m["ok"]:
                        acked.extend(m["result"]["ids"])
        except (ConnectionError, OSError, ValueError):
            pass  # the daemon was killed under us
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    with d:
        threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        until(lambda: len(acked) > 5000, timeout=60, what="load")
        d.kill()
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors
        n = len(acked)
        d.start()
        with d.client() as c:
            missing = [j for j in acked if not c.call("get", id=j)["ok"]]
            assert not missing, "%d of %d acknowledged jobs lost, e.g. %s" % (len(missing), n, missing[:5])
            assert "recovered" in d.logtext()
        print("sigkill: %d acknowledged jobs, all found after restart" % n)


# ---- bad input ---------------------------------------------------------------

@case
def malformed_input():
    with Daemon(config="max_frame = 4096\n") as d:
        bad = [
            (b'{"op":"submit","argv":["tr', "EPROTO"),
            (b'{"op":"get","id":"7"}', "EINVAL"),
            (b'{"op":"submit","argv":"true"}', "EINVAL"),
            (b'{"op":"submit","argv":[1]}', "EINVAL"),
            (b'{"op":"frob"}', "EINVAL"),
            (b'{"op":"get"}', "EINVAL"),
            (b'{"op":"get","id":123456789012345678901234567890}', "EPROTO"),
            (b'{"op":"submit","delay":1e400}', "EPROTO"),
            (b'{"op":"submit","queue":"q","delay":-1}', "EINVAL"),
            (b'{"op":"submit","queue":"q","retries":-5}', "EINVAL"),
            (b'{"op":"submit","queue":"\xc3\x28"}', "EPROTO"),
            (b'\xff\xfe\xfd', "EPROTO"),
            (b'{"op":"submit","argv":["a\\u0000b"]}', "EINVAL"),
            (b'{"op":"submit","queue":"q","priority":"whenever"}', "EINVAL"),
            (b'{"op":"submit","queue":"q","payload":"x","payload_b64":"eA=="}', "EINVAL"),
            (b'{"op":"submit","queue":"q","payload_b64":"!!!!"}', "EINVAL"),
            (b'{"op":"submit","queue":"q","env":{"A":"b"}}', "EINVAL"),
            (b'{"op":"submit","argv":["true"],"rlimits":{"nofile":[5,1]}}', "EINVAL"),
            (b'{"op":"submit","argv":["true"],"after":[0]}', "EINVAL"),
            (b'{"op":"submit","argv":["true"],"after":[424242]}', "EDEPS"),
            (b'{"op":"submit_batch","jobs":[{"argv":["true"]},{"argv":7}]}', "EINVAL"),
            (b'{"op":"wait","id":1,"ids":[1]}', "EINVAL"),
            (b'{"op":"list","state":"sleeping"}', "EINVAL"),
            (b'{"op":"ack","id":1}', "EINVAL"),
            (b'null', "EPROTO"),
            (b'{"op":"ping","op":"ping"}', "EPROTO"),
            (b'{"op":"submit","argv":["true"],"umask":512}', "EINVAL"),
            (b'{"op":"submit","argv":["true"],"umask":-1}', "EINVAL"),
            (b'{"op":"submit","argv":["true"],"umask":"022"}', "EINVAL"),
            (b'{"op":"submit","argv":["true"],"stdin":"rel/path"}', "EINVAL"),
            (b'{"op":"submit","argv":["true"],"stdin":"/a\\u0000b"}', "EINVAL"),
            (b'{"op":"submit","argv":["true"],"stdin":"/dev/null","stdin_fd":true}', "EINVAL"),
            (b'{"op":"submit","argv":["true"],"stdin_fd":true}', "EINVAL"),
            (b'{"op":"submit","queue":"q","umask":18}', "EINVAL"),
            (b'{"op":"submit","queue":"q","stdin":"/dev/null"}', "EINVAL"),
            (b'{"op":"submit_batch","env":[],"jobs":[{"argv":["true"]}]}', "EINVAL"),
            (b'{"op":"submit_batch","env":{"A=B":"c"},"jobs":[{"argv":["true"]}]}', "EINVAL"),
            (b'{"op":"submit_batch","env":{"A":1},"jobs":[{"argv":["true"]}]}', "EINVAL"),
            (b'{"op":"signal","id":1,"signal":"NOSUCH"}', "EINVAL"),
            (b'{"op":"signal","id":1,"signal":0}', "EINVAL"),
            (b'{"op":"signal","id":1,"signal":1.5}', "EINVAL"),
            (b'{"op":"signal","id":1}', "EINVAL"),
            (b'{"op":"signal","signal":"INT"}', "EINVAL"),
            (b'{"op":"signal","id":424242,"signal":"INT"}', "ENOENT"),
        ]
        with d.client() as c:
            for line, code in bad:
                c.send_raw(line + b"\n")
                m = c.line()
                assert m is not None and not m["ok"] and m["error"]["code"] == code, (line, m)
            assert c.ok("ping")["pong"]  # still usable
            st = c.ok("stats")["total"]
            assert st["submitted"] == 0, "a rejected batch submitted nothing: %s" % st
        # random bytes, then the connection still answers or is closed; the daemon lives
        import random
        rnd = random.Random(42)
        for _ in range(20):
            with d.client() as c:
                junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 3000)))
                c.send_raw(junk.replace(b"\n", b" ") + b"\n")
                m = c.line()
                assert m is None or m["ok"] is False
        # an oversize frame closes that connection only
        with d.client() as other, d.client() as c:
            c.send_raw(b'{"op":"submit","queue":"q","payload":"' + b"x" * 10000)
            m = c.line()
            assert m["error"]["code"] == "E2BIG", m
            assert c.line() is None  # closed
            assert other.ok("ping")["pong"]
        # half a request, then silence: others are served meanwhile
        with d.client() as stall, d.client() as c:
            stall.send_raw(b'{"op":"submit","queue":')
            for _ in range(50):  # answered while the other waits (no wall-clock bound)
                c.ok("ping")
            stall.send_raw(b'"late","payload":"ok"}\n')
            assert stall.line()["ok"]  # and the stalled one finishes later
        # a client that vanishes mid-request
        c = d.client()
        c.send_raw(b'{"op":"wait","id":1,"timeout":100}\n{"op":"sub')
        c.close()
        with d.client() as c:
            assert c.ok("ping")["pong"]
        assert d.alive()


# ---- security ------------------------------------------------------------------

@case
def permissions():
    if os.geteuid() != 0:
        raise Skip("needs root to act as a second user")
    with Daemon(config="max_jobs_per_user = 3\n") as d:
        other = 65534

        def as_other(fn):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                code = 0
                try:
                    os.setgid(0)  # group of the 0660 socket, as a dispatchd group would be
                    os.setuid(other)
                    res = fn()
                    os.write(w, json.dumps(res).encode())
                except BaseException as e:  # noqa: BLE001
                    os.write(w, json.dumps({"exception": repr(e)}).encode())
                    code = 1
                os._exit(code)
            os.close(w)
            data = b""
            while True:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                data += chunk
            os.close(r)
            _, status = os.waitpid(pid, 0)
            res = json.loads(data)
            assert status == 0, res
            return res

        with d.client() as c:
            root_job = c.ok("submit", argv=["sleep", "30"])["id"]
            root_ext = c.ok("submit", queue="shared", payload="r")["id"]
            done = c.ok("submit", argv=["echo", "secret"])["id"]
            c.wait(done)

        def other_user():
            out = {}
            with Client(d.sock) as o:
                out["uid"] = o.ok("ping")["uid"]
                out["cancel"] = o.call("cancel", id=root_job)["error"]["code"]
                out["signal"] = o.call("signal", id=root_job, signal="INT")["error"]["code"]
                out["output"] = o.call("output", id=done)["error"]["code"]
                out["reserve"] = o.ok("reserve", queue="shared")["job"]
                out["ack"] = o.call("ack", id=root_ext, attempt=1)["error"]["code"]
                out["get"] = o.ok("get", id=root_job)["job"]["state"]
                mine = o.ok("submit", argv=["id", "-u"])["id"]
                out["mine"] = o.wait(mine)
                out["mine_out"] = base64.b64decode(o.ok("output", id=mine)["data"]).decode()
                o.ok("cancel", id=o.ok("submit", argv=["sleep", "30"])["id"])
                # the per-user limit (3) counts only unfinished jobs: ended
                # ones are given back, for this uid too
                for _ in range(4):
                    o.wait(o.ok("submit", argv=["true"])["id"])
                out["drain"] = o.call("drain")["error"]["code"]
            return out

        res = as_other(other_user)
        assert res["uid"] == other, res
        assert res["cancel"] == "EPERM" and res["output"] == "EPERM" and res["ack"] == "EPERM", res
        assert res["signal"] == "EPERM", res
        assert res["reserve"] is None, "another user's job was leased: %s" % res
        assert res["get"] == "running"
        assert res["mine"]["uid"] == other and res["mine_out"] == "%d\n" % other, res
        assert res["drain"] == "EPERM"
        with d.client() as c:
            assert c.ok("get", id=root_job)["job"]["state"] == "running"
            c.ok("cancel", id=root_job)


def exits_refusing(d, timeout=30):
    """Starts @d, which must exit 1 at once; returns its log."""
    d.start(wait=False)
    rc = d.proc.wait(timeout)
    d.logf.close()
    log = d.logtext()
    assert rc == 1, "dispatchd exited %d, want 1:\n%s" % (rc, log)
    return log


@case
def state_dir_another_user_prepared():
    """A root dispatchd refuses a state dir that is not its own (DESIGN.md
    section 9): another user's, holding a log whose job claims root, or one
    that others may write. The log is written by root here and handed to
    the user, as a forged one would be."""
    if os.geteuid() != 0:
        raise Skip("needs root to create a second user (useradd)")
    import pwd
    user = "ddh3d"
    subprocess.run(["userdel", user], capture_output=True)
    subprocess.run(["useradd", "-M", "-N", user], check=True, capture_output=True)
    try:
        pw = pwd.getpwnam(user)
        with Daemon() as d:
            marker = os.path.join(d.dir, "ran-as-root")
            with d.client() as c:
                jid = c.ok("submit", argv=["touch", marker], delay=3600)["id"]
                assert c.ok("get", id=jid)["job"]["uid"] == 0
            assert d.stop() == 0
            subprocess.run(["chown", "-R", "%d:%d" % (pw.pw_uid, pw.pw_gid), d.state], check=True)
            log = exits_refusing(d)
            want = "state dir %s is owned by uid %d (%s), mode 0700" % (d.state, pw.pw_uid, user)
            assert want in log and "chown root %s" % d.state in log, log
            assert not os.path.exists(marker), "the job claiming root ran"

            subprocess.run(["chown", "-R", "0:0", d.state], check=True)
            os.chmod(d.state, 0o777)
            log = exits_refusing(d)
            assert "state dir %s is owned by uid 0 (root), mode 0777" % d.state in log, log

            os.chmod(d.state, 0o700)
            d.start()  # its own again: the job is still held in its log
            with d.client() as c:
                assert c.ok("get", id=jid)["job"]["state"] == "delayed"
                c.ok("cancel", id=jid)
            assert not os.path.exists(marker)
    finally:
        subprocess.run(["userdel", user], capture_output=True)


@case
def idempotency_keys_per_owner():
    """Another user's submit with the key root used makes its own job (and
    runs it); the same user's second submit with it makes none."""
    if os.geteuid() != 0:
        raise Skip("needs root to act as a second user")
    other = 65534
    with Daemon() as d:
        with d.client() as c:
            mine = c.ok("submit", argv=["true"], key="k")["id"]
            c.wait(mine)
        first = d.ctl("submit", "--key", "k", "--", "id", "-u", check=0, user=other)
        again = d.ctl("submit", "--key", "k", "--", "id", "-u", check=0, user=other)
        theirs = int(first.stdout.split()[0])
        assert theirs != mine, "another user's key answered with root's job"
        assert int(again.stdout.split()[0]) == theirs
        with d.client() as c:
            job = c.wait(theirs)
            assert job["uid"] == other and job["state"] == "succeeded", job
            assert c.ok("submit", argv=["true"], key="k")["id"] == mine


@case
def tcp_with_token():
    port = 20000 + os.getpid() % 20000
    d = Daemon("--listen", "127.0.0.1:%d" % port)
    token = "s3cret-token-0123456789"
    tdir = tempfile.mkdtemp(prefix="dd-tok-")
    tf = os.path.join(tdir, "token")
    with open(tf, "w") as f:
        f.write(token + "\n")
    os.chmod(tf, 0o600)
    d.extra += ["--token-file", tf]
    with d:
        c = Client(tcp=("127.0.0.1", port))
        c.err("submit", "EPERM", argv=["true"])
        assert c.ok("ping")["pong"]
        c.err("auth", "EPERM", token="wrong")
        assert c.line() is None  # a wrong token ends the connection
        c.close()
        with Client(tcp=("127.0.0.1", port)) as c:
            c.ok("auth", token=token)
            jid = c.ok("submit", argv=["true"])["id"]
            assert c.wait(jid)["state"] == "succeeded"
    # a token others can read is refused at start
    d2 = Daemon("--listen", "127.0.0.1:%d" % (port + 1), "--token-file", tf, autostart=False)
    os.chmod(tf, 0o644)
    with d2:
        d2.start(wait=False)
        assert d2.proc.wait(20) == 1
        assert "readable by others" in d2.logtext()
    shutil.rmtree(tdir)


@case
def config_and_signals():
    with Daemon(config="[dispatchd]\nmax_frame = 2048\nmax_jobs_per_user = 3\nspin = auto\n") as d:
        with d.client() as c:
            for i in range(3):
                c.ok("submit", queue="held", payload=str(i))
            e = c.err("submit", "EAGAIN", queue="held")
            assert "unfinished" in e["message"]
            c.send_raw(b'{"op":"ping","pad":"' + b"x" * 3000 + b'"}\n')
            assert c.line()["error"]["code"] == "E2BIG"
        # SIGHUP reloads the limits from the file
        with open(os.path.join(d.dir, "dispatchd.ini"), "w") as f:
            f.write("max_frame = 65536\nmax_jobs_per_user = 100\n")
        d.send_signal(signal.SIGHUP)
        until(lambda: "limits reloaded" in d.logtext(), what="reload")
        with d.client() as c:
            c.ok("submit", queue="held", payload="x" * 3000)
        d.send_signal(signal.SIGPIPE)  # ignored: had it killed, it would answer no ping
        with d.client() as c:
            assert c.ok("ping")["pong"]
        assert d.alive()
        assert d.stop(signal.SIGINT) == 0
    # bad settings: clear message, exit 2
    for cfg, msg in [("bogus = 1\n", "unknown setting"), ("shards = lots\n", "bad value"),
                     ("spin = often\n", "bad value"), ("[other]\nx=1\n", "unknown section")]:
        d = Daemon(config=cfg, autostart=False)
        with d:
            d.start(wait=False)
            assert d.proc.wait(20) == 2, d.logtext()
            assert msg in d.logtext(), d.logtext()
    d = Daemon("--shards", "x", autostart=False)
    with d:
        d.start(wait=False)
        assert d.proc.wait(20) == 2


@case
def prometheus_metrics():
    """--metrics serves /metrics in the Prometheus text format; promtool
    (Debian's prometheus package) accepts it."""
    import shutil as sh
    import urllib.error
    import urllib.request
    port = 30000 + os.getpid() % 20000
    with Daemon("--metrics", "127.0.0.1:%d" % port) as d, d.client() as c:
        ids = c.ok("submit_batch", jobs=[{"argv": ["true"]}, {"argv": ["false"]}])["ids"]
        c.ok("wait", ids=ids)
        c.call("frob")  # an error, counted
        url = "http://127.0.0.1:%d/metrics" % port
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
        want = ['dispatchd_jobs_submitted_total{shard="0"} 2',
                'dispatchd_jobs_succeeded_total{shard="0"} 1',
                'dispatchd_jobs_failed_total{shard="0"} 1',
                'dispatchd_jobs{shard="0",state="queued"} 0',
                "# TYPE dispatchd_fate_bytes gauge",
                "# TYPE dispatchd_requests_total counter",
                "# TYPE dispatchd_run_seconds histogram",
                'dispatchd_run_seconds_count{shard="0"} 2',
                'dispatchd_run_seconds_bucket{shard="0",le="+Inf"} 2',
                'dispatchd_durable_ack_seconds_count{shard="0"} 2',
                "# TYPE dispatchd_process_cpu_seconds_total counter",
                'dispatchd_process_oom_total{shard="0"} 0',
                "dispatchd_cgroups %d" % (os.geteuid() == 0),
                'dispatchd_build_info{version="']
        for w in want:
            assert w in text, (w, text)
        # the jitter probe: loaded (root, BTF) or said to be absent
        assert "dispatchd_probe_loaded " in text
        if "dispatchd_probe_loaded 1" in text:
            assert 'dispatchd_runqueue_latency_seconds_count{role="worker"}' in text, text
            assert c.ok("stats")["probe"]["status"] == "loaded"
        else:
            assert c.ok("stats")["probe"]["status"].startswith("unavailable")
        errs = [ln for ln in text.splitlines() if ln.startswith("dispatchd_request_errors_total ")]
        assert errs and int(errs[0].split()[1]) >= 1, errs
        promtool = sh.which("promtool")
        assert promtool, "promtool missing: scripts/setup installs Debian's prometheus package"
        r = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/nope" % port, timeout=10)
            raise AssertionError("404 expected")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    # a port in use is a clear error at start
    with Daemon("--metrics", "127.0.0.1:%d" % port) as a:
        b = Daemon("--metrics", "127.0.0.1:%d" % port, autostart=False)
        with b:
            b.start(wait=False)
            assert b.proc.wait(20) == 1
            assert "cannot serve metrics" in b.logtext(), b.logtext()
        del a


@case
def dispatchctl_top():
    """top: frames on a pipe; in a terminal it redraws and ends on q."""
    import pty
    import select
    with Daemon() as d, d.client() as c:
        c.ok("wait", ids=c.ok("submit_batch", jobs=[{"queue": "dispatchd.noop"}] * 50)["ids"])
        r = d.ctl("top", "--count", "2", check=0)
        out = r.stdout.decode()
        # the first frame has no second before it: totals since start, no rate
        assert out.count("per second") == 1 and out.count("since start") == 2, out
        assert out.index("since start") < out.index("per second"), out
        assert "dispatch" in out and "durable_ack" in out and "last second" in out, out
        d.ctl("top", "--count", "x", check=2)
        pid, fd = pty.fork()
        if pid == 0:
            os.environ["DISPATCHD_SOCKET"] = d.sock
            os.execv(os.environ.get("DISPATCHCTL", "build/daemon/dispatchctl"),
                     ["dispatchctl", "top"])
        seen = b""
        deadline = time.time() + 10
        while b"q to quit" not in seen and time.time() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                seen += os.read(fd, 65536)
        assert b"q to quit" in seen and b"\x1b[2J" in seen, seen[-500:]
        os.write(fd, b"q")
        deadline = time.time() + 5
        status = None
        while time.time() < deadline:
            p2, st = os.waitpid(pid, os.WNOHANG)
            if p2 == pid:
                status = st
                break
            try:
                if select.select([fd], [], [], 0.1)[0]:
                    os.read(fd, 65536)
            except OSError:
                pass
        assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        os.close(fd)


@case
def python_example():
    """docs/examples/dispatchd_client.py works against a real daemon."""
    ex = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "examples",
                      "dispatchd_client.py")
    with Daemon() as d:
        r = subprocess.run([sys.executable, ex], capture_output=True, timeout=60,
                           env=dict(os.environ, DISPATCHD_SOCKET=d.sock))
        out = r.stdout.decode()
        assert r.returncode == 0, out + r.stderr.decode()
        assert "succeeded, exit 0" in out and "worker got item-2" in out, out
        assert "batch: ['succeeded', 'succeeded', 'succeeded']" in out, out


# ---- the client trusts only its own daemon; durations; comments; the log ----

TS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z dispatchd: "


class RealUsers:
    """Real users made with useradd for the length of a with block, and
    removed with userdel afterwards whatever happens (root only)."""

    def __init__(self, *names):
        self.names = names
        self.made = []

    def __enter__(self):
        import pwd
        for n in self.names:
            subprocess.run(["userdel", n], capture_output=True)  # left by a killed run
            r = subprocess.run(["useradd", "-M", "-U", "-s", "/bin/sh", n], capture_output=True)
            if r.returncode != 0:
                self.__exit__()
                raise AssertionError("useradd %s: %s" % (n, r.stderr.decode()))
            self.made.append(n)
        return [pwd.getpwnam(n) for n in self.names]

    def __exit__(self, *exc):
        for n in self.made:
            subprocess.run(["userdel", n], capture_output=True)
        self.made = []


def as_user(pw):
    """A preexec_fn that becomes @pw (a passwd entry), groups and all."""
    def pre():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return pre


def user_env(pw, **extra):
    """A plain login-like environment of @pw: no XDG_RUNTIME_DIR, no
    DISPATCHD_SOCKET, so that the defaults apply."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_RUNTIME_DIR", "DISPATCHD_SOCKET", "DISPATCHD_TOKEN_FILE")}
    env.update(HOME="/", USER=pw.pw_name, LOGNAME=pw.pw_name)
    env.update(extra)
    return env


def ctl_as(pw, *args, env=None):
    from harness import DISPATCHCTL
    return subprocess.run([DISPATCHCTL] + list(args), capture_output=True, timeout=60,
                          preexec_fn=as_user(pw), env=env if env is not None else user_env(pw))


class UserDaemon:
    """A dispatchd run by the real user @pw, on its own state dir."""

    def __init__(self, pw, *extra):
        from harness import DISPATCHD
        self.dir = tempfile.mkdtemp(prefix="dd-h5u-")
        os.chmod(self.dir, 0o755)
        self.state = os.path.join(self.dir, "state")
        os.mkdir(self.state, 0o700)
        os.chown(self.state, pw.pw_uid, pw.pw_gid)
        self.log = os.path.join(self.dir, "log")
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([DISPATCHD, "--state-dir", self.state, "--workers", "1"] + list(extra),
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     preexec_fn=as_user(pw), env=user_env(pw))

    def logtext(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_ready(self, sock):
        def up():
            assert self.proc.poll() is None, "dispatchd exited %s:\n%s" % (self.proc.returncode, self.logtext())
            try:
                with Client(sock) as c:
                    return c.call("ping")["ok"]
            except OSError:
                return False
        until(up, timeout=20, what="dispatchd as a user")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@case
def client_refuses_squatted_socket():
    """Bob squats the default socket path of Alice (no XDG_RUNTIME_DIR):
    Alice's dispatchctl refuses the directory, and, pointed at the socket
    itself, refuses a daemon that runs as bob (SO_PEERCRED). Alice's own
    daemon makes the private directory, and her client uses it."""
    if os.geteuid() != 0:
        raise Skip("needs root to create the users ddh5a and ddh5b")
    with RealUsers("ddh5a", "ddh5b") as (alice, bob):
        private = "/tmp/dispatchd-%d" % alice.pw_uid
        sock = private + "/dispatchd.sock"
        shutil.rmtree(private, ignore_errors=True)
        bobd = None
        try:
            # bob's trap, where Alice's client would look
            os.mkdir(private, 0o755)
            os.chown(private, bob.pw_uid, bob.pw_gid)
            bobd = UserDaemon(bob, "--socket", sock)
            bobd.wait_ready(sock)
            os.chmod(sock, 0o666)  # bob lets everyone in
            r = ctl_as(alice, "submit", "--", "true")
            err = r.stderr.decode()
            assert r.returncode == 1, (r.returncode, err)
            assert private in err and "belongs to ddh5b, uid %d" % bob.pw_uid in err, err
            # named outright: the directory is not the point, the daemon's uid is
            for args, env in [(["-s", sock], user_env(alice)),
                              ([], user_env(alice, DISPATCHD_SOCKET=sock))]:
                r = ctl_as(alice, *(args + ["submit", "--", "true"]), env=env)
                err = r.stderr.decode()
                assert r.returncode == 1, (r.returncode, err)
                assert "refusing %s" % sock in err and "uid %d (ddh5b)" % bob.pw_uid in err, err
                assert "uid %d (ddh5a)" % alice.pw_uid in err, err
            with Client(sock) as c:
                assert c.ok("stats")["total"]["submitted"] == 0, "a job reached bob's daemon"
            bobd.close()
            bobd = None
            # Alice's own daemon refuses to listen in bob's directory
            ad = UserDaemon(alice)
            try:
                assert ad.proc.wait(20) == 1, ad.logtext()
                assert "belongs to ddh5b" in ad.logtext(), ad.logtext()
            finally:
                ad.close()
            shutil.rmtree(private)
            # ... and makes her private directory itself, 0700
            ad = UserDaemon(alice)
            try:
                ad.wait_ready(sock)
                st = os.lstat(private)
                assert stat.S_ISDIR(st.st_mode) and st.st_uid == alice.pw_uid, st
                assert stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
                r = ctl_as(alice, "ping")
                assert r.returncode == 0 and b"uid %d" % alice.pw_uid in r.stdout, r
                # a directory others may write is not trusted either
                os.chmod(private, 0o777)
                r = ctl_as(alice, "ping")
                assert r.returncode == 1 and b"writable by others" in r.stderr, r
                os.chmod(private, 0o700)
                # nor a symlink to a directory of hers
                real = private + ".real"
                os.rename(private, real)
                os.symlink(real, private)
                try:
                    r = ctl_as(alice, "ping")
                    assert r.returncode == 1 and b"is a symlink" in r.stderr, r
                finally:
                    os.unlink(private)
                    os.rename(real, private)
                assert ctl_as(alice, "ping").returncode == 0
            finally:
                ad.close()
        finally:
            if bobd:
                bobd.close()
            shutil.rmtree(private, ignore_errors=True)
            shutil.rmtree(private + ".real", ignore_errors=True)


@case
def dispatchctl_over_tcp():
    """-s HOST:PORT with --token-file or DISPATCHD_TOKEN_FILE."""
    port = 21000 + os.getpid() % 20000
    tdir = tempfile.mkdtemp(prefix="dd-tok-")
    tf = os.path.join(tdir, "token")
    with open(tf, "w") as f:
        f.write("s3cret-token-0123456789\n")
    os.chmod(tf, 0o600)
    wrong = os.path.join(tdir, "wrong")
    with open(wrong, "w") as f:
        f.write("not-the-token-0123456789\n")
    os.chmod(wrong, 0o600)
    addr = "127.0.0.1:%d" % port
    try:
        with Daemon("--listen", addr, "--token-file", tf) as d:
            env = {k: v for k, v in os.environ.items() if k != "DISPATCHD_SOCKET"}

            def ctl(*args, **extra):
                from harness import DISPATCHCTL
                return subprocess.run([DISPATCHCTL] + list(args), capture_output=True, timeout=60,
                                      env=dict(env, **extra))
            r = ctl("-s", addr, "--token-file", tf, "ping")
            assert r.returncode == 0 and b"uid %d" % os.geteuid() in r.stdout, r
            r = ctl("-s", addr, "submit", "--", "true", DISPATCHD_TOKEN_FILE=tf)
            assert r.returncode == 0, r
            jid = r.stdout.strip().decode()
            r = ctl("-s", addr, "wait", jid, DISPATCHD_TOKEN_FILE=tf)
            assert r.returncode == 0 and b"succeeded" in r.stdout, r
            r = ctl("-s", ":%d" % port, "--json", "get", jid, DISPATCHD_TOKEN_FILE=tf)
            assert r.returncode == 0 and json.loads(r.stdout)["job"]["uid"] == os.geteuid(), r
            # no token, a wrong one, one others may read
            r = ctl("-s", addr, "ping")
            assert r.returncode == 1 and b"--token-file" in r.stderr, r
            r = ctl("-s", addr, "--token-file", wrong, "ping")
            assert r.returncode == 1 and b"refused the token" in r.stderr, r
            os.chmod(tf, 0o640)
            r = ctl("-s", addr, "--token-file", tf, "ping")
            assert r.returncode == 1 and b"readable by others" in r.stderr, r
            os.chmod(tf, 0o600)
            r = ctl("-s", "127.0.0.1:1", "--token-file", tf, "ping")
            assert r.returncode == 1 and b"cannot connect to 127.0.0.1:1" in r.stderr, r
        # IPv6, written [ADDR]:PORT, where the machine has ::1
        try:
            probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            return
        addr6 = "[::1]:%d" % (port + 1)
        with Daemon("--listen", addr6, "--token-file", tf):
            from harness import DISPATCHCTL
            r = subprocess.run([DISPATCHCTL, "-s", addr6, "--token-file", tf, "ping"],
                               capture_output=True, timeout=60)
            assert r.returncode == 0 and b"alive" in r.stdout, r
    finally:
        shutil.rmtree(tdir)


@case
def durations():
    """One duration syntax in the settings and in dispatchctl's flags."""
    cfg = ("kill_grace = 1m30s\nshutdown_grace = 0:01:05\nsubmit_wait = 250ms\nspin = 50us\n")
    with Daemon(config=cfg) as d, d.client() as c:
        j = c.ok("get", id=int(d.ctl("submit", "--delay", "1h30m", "--", "true", check=0).stdout))["job"]
        assert j["state"] == "delayed", j
        jid = d.ctl("submit", "--timeout", "250ms", "--", "sleep", "30", check=0).stdout.strip().decode()
        assert c.wait(int(jid))["state"] == "timed_out"
        jid = d.ctl("submit", "--delay", "0:00:00.5", "--", "true", check=0).stdout.strip().decode()
        j = c.wait(int(jid))
        assert j["state"] == "succeeded" and j["started_at"] - j["submitted_at"] >= 0.45, j
        slow = d.ctl("submit", "--", "sleep", "30", check=0).stdout.strip().decode()
        r = d.ctl("wait", "--timeout", "0:01", slow, check=1)
        assert r.stderr.decode() == "dispatchctl: job %s: had not ended within the timeout\n" % slow, r.stderr
        d.ctl("wait", "--timeout", "100ms", slow, check=1)
        d.ctl("cancel", slow, check=0)
        for bad in ["5x", "1h30", "-1", "1:60", "1 s"]:
            r = d.ctl("submit", "--delay", bad, "--", "true", check=2)
            r = d.ctl("wait", "--timeout", bad, slow, check=2)
            assert b"1h30m" in r.stderr and b"1:00:00" in r.stderr, r.stderr
        d.ctl("drain", check=0)  # a drain waits for running jobs; a stop does not
        assert d.proc.wait(30) == 0
        assert "waiting up to 65 s" in d.logtext(), d.logtext()
    for cfg in ["kill_grace = 5x\n", "spin = 2s\n", "submit_wait = 2h\n", "shutdown_grace = 1:99\n"]:
        d = Daemon(config=cfg, autostart=False)
        with d:
            d.start(wait=False)
            assert d.proc.wait(20) == 2, d.logtext()
            assert "bad value" in d.logtext() and "a duration" in d.logtext(), d.logtext()


def operations_example_config():
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "OPERATIONS.md")
    with open(doc) as f:
        text = f.read()
    start = text.index("```ini\n") + len("```ini\n")
    return text[start:text.index("```", start)]


@case
def config_inline_comments():
    """The example of docs/OPERATIONS.md, as written, and comments after
    values ('#' or ';' after a blank)."""
    example = operations_example_config()
    assert "# " in example and "[dispatchd]" in example, example
    # its paths are a real machine's: this case's flags put them here
    d = Daemon(config=example, autostart=False)
    d.extra += ["--output-dir", os.path.join(d.dir, "output")]
    with d.start(), d.client() as c:
        assert c.ok("ping")["pong"]
    cfg = "[dispatchd]\nmax_batch = 2 ; two\nmax_frame = 2048\t# tab before\nspin = auto#not a comment\n"
    d = Daemon(config=cfg, autostart=False)
    with d:
        d.start(wait=False)
        assert d.proc.wait(20) == 2 and "bad value 'auto#not a comment' for spin" in d.logtext(), d.logtext()
    cfg = "[dispatchd]\nmax_batch = 2 ; two\nmax_frame = 2048\t# tab before\nspin = 0 # off\n"
    with Daemon(config=cfg) as d, d.client() as c:
        c.err("submit_batch", "E2BIG", jobs=[{"queue": "q"}] * 3)
        c.send_raw(b'{"op":"ping","pad":"' + b"x" * 3000 + b'"}\n')
        assert c.line()["error"]["code"] == "E2BIG"


@case
def log_timestamps_and_sighup():
    """Every line of the log has an ISO 8601 UTC timestamp with ms; after
    SIGHUP reopens the file, lines reach it as they are logged."""
    import re
    d = Daemon("-v", autostart=False)
    logf = os.path.join(d.dir, "dispatchd.log")
    d.extra += ["--log-file", logf]
    with d:
        d.start()

        def text(path):
            with open(path) as f:
                return f.read()
        until(lambda: "ready: socket" in text(logf), what="ready in the log file")
        with d.client() as c:
            c.ok("ping")
        until(lambda: "connection 2: unix" in text(logf), what="a connection logged at once")
        os.rename(logf, logf + ".1")  # as logrotate does
        d.send_signal(signal.SIGHUP)
        until(lambda: os.path.exists(logf) and "SIGHUP" in text(logf), what="the reopened log")
        for n in range(3, 6):
            with d.client() as c:
                c.ok("ping")
            # read while the daemon runs: the line is there, not in a buffer
            until(lambda: "connection %d: unix" % n in text(logf), what="line-buffered after SIGHUP")
        assert d.alive()
        lines = (text(logf + ".1") + text(logf)).splitlines()
        assert len(lines) >= 6, lines
        for ln in lines:
            assert re.match(TS, ln), ln


@case
def dispatchctl_ids_and_json():
    """list --after 0 / --limit 0; errors name their job; --json prints
    only JSON on stdout; notes go to stderr."""
    with Daemon() as d, d.client() as c:
        ids = c.ok("submit_batch", jobs=[{"queue": "dispatchd.noop"}] * 1200)["ids"]
        c.ok("wait", ids=ids)
        done = c.ok("submit", argv=["echo", "hi"])["id"]
        c.wait(done)
        running = c.ok("submit", argv=["sleep", "30"])["id"]
        r = d.ctl("list", "--after", "0", "--limit", "0", check=0)
        rows = r.stdout.decode().splitlines()
        assert len(rows) == 1 + 1202 and rows[0].startswith("ID"), rows[:3]
        assert r.stderr == b"", r.stderr
        r = d.ctl("list", "--after", "0", "--limit", "2", check=0)
        assert len(r.stdout.decode().splitlines()) == 3, r.stdout
        assert r.stderr.decode().strip() == "(more: --after %d)" % ids[1], r.stderr
        r = d.ctl("--json", "list", "--limit", "0", check=0)
        lst = json.loads(r.stdout)
        assert len(lst["jobs"]) == 1202 and lst["next"] is None, (len(lst["jobs"]), lst["next"])
        r = d.ctl("--json", "list", "--limit", "5", "--after", "0", check=0)
        assert json.loads(r.stdout)["next"] == ids[4] and r.stderr == b""
        d.ctl("list", "--limit", "-1", check=2)
        d.ctl("list", "--after", "x", check=2)
        # every command's --json stdout parses
        for args in [["ping"], ["stats"], ["get", str(done)], ["wait", str(done)],
                     ["cancel", str(running)], ["list"]]:
            r = d.ctl("--json", *args, check=0)
            json.loads(r.stdout)
        # run --json: the ended job alone on stdout, its stderr on stderr
        r = d.ctl("--json", "run", "--", "sh", "-c", "echo out; echo err >&2", check=0)
        assert json.loads(r.stdout)["state"] == "succeeded" and r.stderr == b"err\n", r
        r = d.ctl("--json", "top", "--count", "2", check=0)
        frames = [json.loads(ln) for ln in r.stdout.decode().splitlines()]
        assert len(frames) == 2 and all("total" in f for f in frames), r.stdout
        # errors name the job
        gone = 987654
        for args in [["get"], ["cancel"], ["wait"], ["output"], ["--json", "get"], ["wait", "--timeout", "1"]]:
            r = d.ctl(*(args + [str(gone)]), check=1)
            assert r.stderr.decode() == "dispatchctl: job %d: no such job\n" % gone, (args, r.stderr)
            assert r.stdout == b"", (args, r.stdout)
        r = d.ctl("wait", str(done), str(gone), check=1)
        assert b"job %d: no such job" % gone in r.stderr, r.stderr
        r = d.ctl("cancel", str(done), check=1)
        assert r.stderr.decode().startswith("dispatchctl: job %d: " % done), r.stderr
        if os.geteuid() != 0:
            return  # another user's job needs a second uid
        mine = c.ok("submit", argv=["sleep", "30"])["id"]
        nobody = 65534
        for cmd in ["cancel", "output"]:
            r = d.ctl(cmd, str(mine), user=nobody, check=1)
            assert r.stderr.decode().startswith(
                "dispatchctl: job %d: belongs to uid 0;" % mine), (cmd, r.stderr)
        d.ctl("get", str(mine), user=nobody, check=0)
        r = d.ctl("wait", "--timeout", "0.1", str(mine), user=nobody, check=1)
        c.ok("cancel", id=mine)


@case
def log_full_disk_once():
    """A full disk is logged once when it begins and once when writing
    works again, not once per refused submission."""
    import re
    if os.geteuid() != 0:
        raise Skip("needs root to mount a small tmpfs to fill")
    mnt = tempfile.mkdtemp(prefix="dd-h5-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m,mode=0700", "tmpfs", mnt],
                       capture_output=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        raise Skip("cannot mount a tmpfs: %s" % r.stderr.decode().strip())
    try:
        d = Daemon(state=os.path.join(mnt, "state"))
        with d, d.client() as c:
            c.ok("submit", queue="q", payload="x")
            until(lambda: c.ok("stats")["total"]["store_jobs"] >= 1, what="the store caught up")
            fd = os.open(os.path.join(mnt, "filler"), os.O_CREAT | os.O_WRONLY, 0o600)
            size = 0
            try:
                while True:
                    size += os.write(fd, b"\0" * 65536)
            except OSError:
                pass
            os.ftruncate(fd, max(0, size - (3 << 20)))
            refused = 0
            for _ in range(400):
                if not c.call("submit", queue="q", payload="y" * 500000)["ok"]:
                    refused += 1
                    if refused == 3:
                        break
            assert refused == 3, "the disk never filled"
            until(lambda: "cannot be written" in d.logtext(), what="the full disk logged")
            os.ftruncate(fd, 0)
            os.close(fd)
            until(lambda: "written again" in d.logtext(), what="the end of it logged")
            c.ok("submit", queue="q", payload="z")
            mine = [ln for ln in d.logtext().splitlines() if "written" in ln and "store" in ln and "job log" in ln]
            assert len(mine) == 2, mine
            assert all(re.match(TS, ln) for ln in mine), mine
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)
        os.rmdir(mnt)


@case
def root_default_socket_and_fallback():
    """A root dispatchd with no --socket listens on /run/dispatchd/dispatchd.sock
    in a directory it makes 0755; a user without a daemon of her own reaches
    it with no -s, and dispatchctl refuses it once /run/dispatchd may be
    written by others. In a mount namespace of its own, over a private /run."""
    from harness import DISPATCHCTL, DISPATCHD
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        raise Skip("needs root, unshare and setpriv to run over a private /run")
    work = tempfile.mkdtemp(prefix="dd-h5-run-")
    os.chmod(work, 0o755)
    script = r"""
set -e
mount -t tmpfs -o mode=0755 tmpfs /run
"$DD" --state-dir "$W/state" --workers 1 >"$W/log" 2>&1 &
pid=$!
i=0
while [ ! -S /run/dispatchd/dispatchd.sock ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
stat -c '%a %u' /run/dispatchd
chmod 0666 /run/dispatchd/dispatchd.sock
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups \
    env -u XDG_RUNTIME_DIR -u DISPATCHD_SOCKET "$@"; }
as_nobody "$CTL" ping
env -u XDG_RUNTIME_DIR -u DISPATCHD_SOCKET "$CTL" ping
chmod 0777 /run/dispatchd
as_nobody "$CTL" ping 2>&1 && echo "WRONGLY ACCEPTED"
kill $pid
wait $pid || true
"""
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, timeout=120,
                           env=dict(os.environ, DD=os.path.abspath(DISPATCHD),
                                    CTL=os.path.abspath(DISPATCHCTL), W=work))
        out = r.stdout.decode()
        if r.returncode != 0 and "mount" in r.stderr.decode() and "755 0" not in out:
            raise Skip("cannot mount a private /run: %s" % r.stderr.decode().strip())
        lines = out.splitlines()
        assert r.returncode == 0 and lines[0] == "755 0", (out, r.stderr.decode())
        alive = [ln for ln in lines if "alive" in ln]
        assert "alive (you are uid 65534)" in alive[0], out
        assert "alive (you are uid 0)" in alive[1], out
        assert "/run/dispatchd is writable by others" in out and "WRONGLY" not in out, out
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- the submitter's context (what sbatch, srun and flux run do) ---------------

def ctl_env(d, **extra):
    return dict(os.environ, DISPATCHD_SOCKET=d.sock, **extra)


def ctl_in(d, cwd, *args, check=None, env=None, input=None):
    """dispatchctl run from @cwd, as a user would type it there."""
    r = subprocess.run([os.path.abspath(DISPATCHCTL)] + list(args), cwd=cwd, capture_output=True,
                       env=env or ctl_env(d), timeout=60, input=input)
    if check is not None:
        assert r.returncode == check, "dispatchctl %s: exit %d (want %d)\nstdout: %s\nstderr: %s" % (
            " ".join(args), r.returncode, check, r.stdout.decode(), r.stderr.decode())
    return r


def job_processes(pgid):
    """Pids of the live processes in process group @pgid."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(p))
    return pids


@case
def submitter_cwd_and_env():
    """cwd and environment: the caller's unless told otherwise; never the daemon's."""
    with Daemon(env={"DDH4_DAEMON_ONLY": "leak"}) as d:
        work = tempfile.mkdtemp(prefix="dd-h4-cwd-")
        try:
            os.mkdir(os.path.join(work, "sub"))
            real = os.path.realpath(work)
            assert ctl_in(d, work, "run", "--", "pwd", check=0).stdout == (real + "\n").encode()
            r = ctl_in(d, work, "run", "--cwd", "sub", "--", "pwd", check=0)
            assert r.stdout == (real + "/sub\n").encode(), r.stdout
            r = ctl_in(d, os.path.join(work, "sub"), "run", "--cwd", "..", "--", "pwd", check=0)
            assert r.stdout == (real + "\n").encode(), r.stdout
            jid = ctl_in(d, work, "submit", "--cwd", "./sub", "--", "pwd", check=0).stdout.strip()
            with d.client() as c:
                c.wait(int(jid))
                assert base64.b64decode(c.ok("output", id=int(jid))["data"]) == (real + "/sub\n").encode()
            show = ["sh", "-c", 'echo "${DDH4_MARK-unset} ${DDH4_OTHER-unset} ${DDH4_DAEMON_ONLY-unset}"']
            env = ctl_env(d, DDH4_MARK="mark one", DDH4_OTHER="x")
            # the whole environment by default, and only it
            assert ctl_in(d, work, "run", "--", *show, env=env, check=0).stdout == b"mark one x unset\n"
            assert ctl_in(d, work, "run", "--export=ALL", "--", *show, env=env, check=0).stdout \
                == b"mark one x unset\n"
            assert ctl_in(d, work, "run", "--export=NONE", "--", *show, env=env, check=0).stdout \
                == b"unset unset unset\n"
            r = ctl_in(d, work, "run", "--export=NONE", "--", "/usr/bin/env", env=env, check=0)
            assert r.stdout == b"", r.stdout
            assert ctl_in(d, work, "run", "--export=DDH4_MARK", "--", *show, env=env, check=0).stdout \
                == b"mark one unset unset\n"
            assert ctl_in(d, work, "run", "--export=DDH4_OTHER,DDH4_MARK=given", "--", *show, env=env,
                          check=0).stdout == b"given x unset\n"
            assert ctl_in(d, work, "run", "--export=ALL,DDH4_OTHER=y", "--", *show, env=env,
                          check=0).stdout == b"mark one y unset\n"
            assert ctl_in(d, work, "run", "--env", "DDH4_OTHER=z", "--env", "DDH4_NEW=n", "--",
                          "sh", "-c", 'echo "$DDH4_MARK $DDH4_OTHER $DDH4_NEW"', env=env,
                          check=0).stdout == b"mark one z n\n"
            assert ctl_in(d, work, "run", "--export=NONE", "--env", "DDH4_MARK=m", "--", *show,
                          env=env, check=0).stdout == b"m unset unset\n"
            ctl_in(d, work, "run", "--export=,", "--", "true", env=env, check=2)
            ctl_in(d, work, "run", "--env", "NOEQUALS", "--", "true", env=env, check=2)
        finally:
            shutil.rmtree(work, ignore_errors=True)


@case
def batch_shared_env():
    """submit_batch's "env" reaches every process job of the batch; a job's own env adds and overrides."""
    with Daemon() as d, d.client() as c:
        show = ["sh", "-c", 'echo "${A-unset} ${B-unset} ${C-unset}"']
        ids = c.ok("submit_batch", env={"A": "1", "B": "2"}, jobs=[
            {"argv": show}, {"argv": show, "env": {"B": "3", "C": "4"}}, {"argv": show, "env": {}},
            {"queue": "w", "payload": "p"},
            {"argv": ["/usr/bin/env"], "env": {"B": "5"}, "env_replace": True}])["ids"]
        outs = []
        for j in ids[:3] + ids[4:]:
            assert c.wait(j)["state"] == "succeeded"
            outs.append(base64.b64decode(c.ok("output", id=j)["data"]))
        assert outs[:3] == [b"1 2 unset\n", b"1 3 4\n", b"1 2 unset\n"], outs
        assert sorted(outs[3].split()) == [b"A=1", b"B=5"], outs[3]
        # a batch the fast path would take, but for its env: decoded in full, same answer
        ids = c.ok("submit_batch", env={"A": "1"}, jobs=[{"queue": "w"}, {"queue": "w"}])["ids"]
        assert len(ids) == 2
        e = c.err("submit_batch", "EINVAL", env={"A": "1"}, jobs=[{"argv": show}, {"argv": show, "env": {"": "x"}}])
        assert e["message"].startswith("jobs[1]:"), e


@case
def submitter_umask():
    """The caller's umask reaches the job; --umask overrides it."""
    with Daemon() as d:
        work = tempfile.mkdtemp(prefix="dd-h4-umask-")
        try:
            def run_with(mask, *args):
                old = os.umask(mask)
                try:
                    return ctl_in(d, work, "run", *args, "--", "sh", "-c", "umask; touch f%o" % mask,
                                  check=0)
                finally:
                    os.umask(old)
            assert run_with(0o027).stdout == b"0027\n"
            assert stat.S_IMODE(os.stat(os.path.join(work, "f27")).st_mode) == 0o640
            assert run_with(0o077).stdout == b"0077\n"
            assert stat.S_IMODE(os.stat(os.path.join(work, "f77")).st_mode) == 0o600
            assert run_with(0o022, "--umask", "0007").stdout == b"0007\n"
        finally:
            shutil.rmtree(work, ignore_errors=True)


def pass_fds(c, data, fds):
    """Sends @data on client @c's socket with @fds passed (SCM_RIGHTS)."""
    import array
    c.s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())])


@case
def stdin_fd_protocol():
    """stdin_fd takes the oldest descriptor the connection passed; none: EINVAL; too many: closed; none leak."""
    def held():  # the daemon's descriptors on the marker file
        fds, on = "/proc/%d/fd" % d.proc.pid, []
        for x in os.listdir(fds):
            try:
                if os.readlink(os.path.join(fds, x)) == marker:
                    on.append(x)
            except FileNotFoundError:
                pass  # closed meanwhile
        return on

    with Daemon() as d:
        marker = os.path.join(d.dir, "passed")
        open(marker, "w").close()
        with d.client() as c:
            e = c.err("submit", "EINVAL", argv=["cat"], stdin_fd=True)
            assert "no file descriptor was passed" in e["message"], e
            # a request that fails still uses the descriptor it came with
            f = os.open(marker, os.O_RDONLY)
            pass_fds(c, json.dumps({"op": "submit", "tag": 1, "argv": ["cat"], "stdin_fd": True,
                                    "stdin": "/dev/null"}).encode() + b"\n", [f])
            assert c.recv(1)["error"]["code"] == "EINVAL"
            assert not held()
            c.err("submit", "EINVAL", argv=["cat"], stdin_fd=True)
            # passed ahead of its request, kept until a stdin_fd submit uses it
            pass_fds(c, b" ", [f])
            assert c.ok("ping")["pong"] and len(held()) == 1
            jid = c.ok("submit", argv=["true"], stdin_fd=True)["id"]
            assert c.wait(jid)["state"] == "succeeded"
            assert not held(), "the daemon keeps no copy once the engine has the job"
            # passed and never used: closed with the connection
            pass_fds(c, b" ", [f, f])
            assert c.ok("ping")["pong"] and len(held()) == 2
        until(lambda: not held(), what="descriptors closed with their connection")
        # more than 8 unused: a protocol error that closes the connection
        with d.client() as c:
            pass_fds(c, b" ", [f] * 9)
            m = c.line()
            assert m is not None and m["error"]["code"] == "EPROTO", m
            assert c.line() is None
        until(lambda: not held(), what="descriptors closed with their connection")
        os.close(f)
        with d.client() as c:
            assert c.ok("ping")["pong"]
    # a submit held for the engine's room keeps its descriptor until it goes in
    with Daemon(config="store_lag_max = 1024\nsubmit_wait = 30\n") as d, \
            d.client() as a, d.client() as b:
        marker = os.path.join(d.dir, "passed")
        open(marker, "w").close()
        with StoreHeld(d):
            submit_until_held(a, [{"queue": "dispatchd.noop"}] * 3000)
            f = os.open(marker, os.O_RDONLY)
            pass_fds(b, json.dumps({"op": "submit", "tag": 1, "argv": ["cat"],
                                    "stdin_fd": True}).encode() + b"\n", [f])
            os.close(f)
            assert answered_within(b, 0.3) is None, "held too"
            assert len(held()) == 1
        m = b.recv(1)
        assert m["ok"], m
        assert b.wait(m["result"]["id"])["state"] == "succeeded"
        until(lambda: not held(), what="the held submit's descriptor closed")


@case
def submitter_stdin():
    """run passes its stdin; submit reads /dev/null or --stdin FILE."""
    with Daemon() as d:
        work = tempfile.mkdtemp(prefix="dd-h4-stdin-")
        try:
            assert ctl_in(d, work, "run", "--", "cat", input=b"hi\n", check=0).stdout == b"hi\n"
            big = os.urandom(300000)
            assert ctl_in(d, work, "run", "--", "cat", input=big, check=0).stdout == big
            with open(os.path.join(work, "in.txt"), "wb") as f:
                f.write(b"from a file\n")
            assert ctl_in(d, work, "run", "--stdin", "in.txt", "--", "cat", input=b"not this",
                          check=0).stdout == b"from a file\n"
            with d.client() as c:
                jid = int(ctl_in(d, work, "submit", "--stdin", "in.txt", "--", "cat", check=0).stdout)
                c.wait(jid)
                assert base64.b64decode(c.ok("output", id=jid)["data"]) == b"from a file\n"
                # submit without --stdin: /dev/null, even with data on dispatchctl's stdin
                jid = int(ctl_in(d, work, "submit", "--", "cat", input=b"ignored", check=0).stdout)
                assert c.wait(jid)["state"] == "succeeded"
                assert base64.b64decode(c.ok("output", id=jid)["data"]) == b""
                # the raw protocol: a pipe's read end passed with the request
                rfd, wfd = os.pipe()
                pass_fds(c, json.dumps({"op": "submit", "tag": 7, "argv": ["cat"],
                                        "stdin_fd": True}).encode() + b"\n", [rfd])
                jid = c.recv(7)["result"]["id"]
                os.close(rfd)
                os.write(wfd, b"piped\n")
                os.close(wfd)
                c.wait(jid)
                assert base64.b64decode(c.ok("output", id=jid)["data"]) == b"piped\n"
        finally:
            shutil.rmtree(work, ignore_errors=True)


def start_run(d, work, script):
    """dispatchctl run of sh -c @script in @work, and its job's id once it runs and wrote 'ready'."""
    p = subprocess.Popen([os.path.abspath(DISPATCHCTL), "run", "--", "sh", "-c", script], cwd=work,
                         env=ctl_env(d), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    until(lambda: os.path.exists(os.path.join(work, "ready")) or p.poll() is not None,
          timeout=30, what="the job to start")
    assert p.poll() is None, p.communicate()
    with d.client() as c:
        jobs = c.ok("list", state="running")["jobs"]
    assert len(jobs) == 1, jobs
    return p, jobs[0]


def assert_no_process_left(d, job):
    with d.client() as c:
        job = c.wait(job["id"])
    assert job["pid"], job
    until(lambda: not job_processes(job["pid"]), what="no process of job %d left" % job["id"])
    return job


@case
def run_sigterm_cancels():
    """SIGTERM or SIGHUP to run cancels its job; run waits for the end and exits 128+signal."""
    with Daemon() as d:
        work = tempfile.mkdtemp(prefix="dd-h4-term-")
        try:
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if os.path.exists(os.path.join(work, "ready")):
                    os.unlink(os.path.join(work, "ready"))
                p, job = start_run(d, work, "sleep 300 & touch ready; wait")
                p.send_signal(sig)
                out, err = p.communicate(timeout=60)
                assert p.returncode == 128 + signal.SIGTERM, (p.returncode, err)
                assert b"cancelling job" in err, err
                job = assert_no_process_left(d, job)
                assert job["state"] == "cancelled", job
        finally:
            shutil.rmtree(work, ignore_errors=True)


@case
def run_ctrl_c():
    """Ctrl-C on run: SIGINT to the job; a second one within 2 s cancels it."""
    with Daemon() as d:
        work = tempfile.mkdtemp(prefix="dd-h4-int-")
        try:
            # forwarded: the job traps it, says so and exits 3; run passes 3 on
            p, job = start_run(d, work, 'trap "echo got INT; exit 3" INT; touch ready; '
                                        'while :; do sleep 1; done')
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
            assert p.returncode == 3 and out == b"got INT\n", (p.returncode, out, err)
            job = assert_no_process_left(d, job)
            assert job["state"] == "failed" and job["exit_code"] == 3, job
            # not trapped: the job dies of SIGINT, run exits 130
            os.unlink(os.path.join(work, "ready"))
            p, job = start_run(d, work, "touch ready; exec sleep 300")
            p.send_signal(signal.SIGINT)
            p.communicate(timeout=60)
            assert p.returncode == 130, p.returncode
            assert_no_process_left(d, job)
            # the job shrugs off the first; the second cancels it
            os.unlink(os.path.join(work, "ready"))
            p, job = start_run(d, work, 'trap "touch interrupted" INT; touch ready; '
                                        'while :; do sleep 1; done')
            p.send_signal(signal.SIGINT)
            until(lambda: os.path.exists(os.path.join(work, "interrupted")), what="the first SIGINT")
            assert p.poll() is None, "run ended on the first Ctrl-C"
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
            assert p.returncode == 128 + signal.SIGTERM, (p.returncode, err)
            job = assert_no_process_left(d, job)
            assert job["state"] == "cancelled", job
        finally:
            shutil.rmtree(work, ignore_errors=True)


@case
def run_ctrl_c_before_the_job_runs():
    """Ctrl-C on run of a job that has not started (delayed): nothing to
    interrupt, so the job is cancelled and run exits 130, as a shell's
    command would."""
    with Daemon() as d, d.client() as c:
        p = subprocess.Popen([os.path.abspath(DISPATCHCTL), "run", "--delay", "300", "--", "true"],
                             env=ctl_env(d), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        jobs = until(lambda: c.ok("list", state="delayed")["jobs"], what="the delayed job")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 130, (p.returncode, out, err)
        assert c.wait(jobs[0]["id"])["state"] == "cancelled"


@case
def descriptors_run_out():
    """Descriptors passed and left unused are bounded over all connections
    (a connection past the bound is closed, EPROTO); a daemon out of
    descriptors says so without a flood, keeps serving its connections, and takes new
    ones once some are free."""
    import array
    import resource
    with Daemon() as d:
        conns, refused = [], 0
        devnull = os.open("/dev/null", os.O_RDONLY)
        for _ in range(70):  # 70 x 8 passed > 512
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(d.sock)
            fds = array.array("i", [devnull] * 8)
            s.sendmsg([b'{"op":"ping","tag":1}\n'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            line = s.makefile("rb").readline()
            if b"EPROTO" in line:
                refused += 1
            conns.append(s)
        os.close(devnull)
        assert refused >= 70 - 512 // 8, refused
        with d.client() as c:
            assert c.ok("ping")["pong"]
        for s in conns:
            s.close()
        # out of descriptors: a low limit on the running daemon
        soft, hard = resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (64, hard))
        held = []
        for _ in range(80):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.sock)  # the backlog takes it; the daemon may not
            held.append(s)
        until(lambda: "new connections wait" in d.logtext(), what="the daemon to say it")
        t0 = time.time()
        while time.time() - t0 < 0.5:  # it would say it thousands of times a second
            time.sleep(0.05)
        # once a turn it got one in and ran out again; never a flood
        assert d.logtext().count("new connections wait") < 10, d.logtext()[-2000:]
        for s in held:
            s.close()
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
        with d.client() as c:
            assert c.ok("ping")["pong"]


@case
def signal_op():
    """The signal op reaches a running job's process group; a job not running a process: ESRCH."""
    with Daemon() as d, d.client() as c:
        work = tempfile.mkdtemp(prefix="dd-h4-sig-")
        try:
            jid = c.ok("submit", argv=["sh", "-c", 'trap "echo usr1; exit 0" USR1; touch ready; '
                                       'while :; do sleep 1; done'], cwd=work)["id"]
            until(lambda: os.path.exists(os.path.join(work, "ready")), what="the job to start")
            assert c.ok("signal", id=jid, signal="SIGUSR1")["signal"] == signal.SIGUSR1
            job = c.wait(jid)
            assert job["state"] == "succeeded", job
            assert base64.b64decode(c.ok("output", id=jid)["data"]) == b"usr1\n"
            assert c.err("signal", "ETERMINAL", id=jid, signal=2)
            later = c.ok("submit", argv=["true"], delay=300)["id"]
            c.err("signal", "ESRCH", id=later, signal="INT")
            c.ok("cancel", id=later)
        finally:
            shutil.rmtree(work, ignore_errors=True)


@case
def run_exit_codes():
    """A command that cannot start: FAILED with the reason naming it; run exits 127 or 126 like a shell."""
    with Daemon() as d:
        work = tempfile.mkdtemp(prefix="dd-h4-exit-")
        try:
            def said_once(stderr, what):  # one line, as a shell's "sh: cmd: not found"
                lines = stderr.decode().splitlines()
                assert len(lines) == 1 and lines[0].endswith(": " + what), stderr

            r = ctl_in(d, work, "run", "--", "ddh4-nonexistcmd", check=127)
            said_once(r.stderr, "ddh4-nonexistcmd: No such file or directory")
            r = ctl_in(d, work, "run", "--", "/no/such/thing", check=127)
            said_once(r.stderr, "/no/such/thing: No such file or directory")
            with open(os.path.join(work, "notexec"), "w") as f:
                f.write("#!/bin/sh\necho no\n")
            r = ctl_in(d, work, "run", "--", "./notexec", check=126)
            said_once(r.stderr, "./notexec: Permission denied")
            # the job's own 127 and 126 pass through without a message
            r = ctl_in(d, work, "run", "--", "sh", "-c", "exit 127", check=127)
            assert r.stderr == b"", r.stderr
            with d.client() as c:
                job = c.wait(c.ok("submit", argv=["ddh4-nonexistcmd"])["id"])
                assert job["state"] == "failed" and job["exit_code"] == 127, job
                assert job["reason"] == "ddh4-nonexistcmd: No such file or directory", job
        finally:
            shutil.rmtree(work, ignore_errors=True)


@case
def make_with_dispatchctl_shell():
    """make -j8 with SHELL=dispatchctl writes every target in the Makefile's directory, with no --cwd."""
    if not shutil.which("make"):
        raise Skip("make is not installed")
    with Daemon() as d:
        work = tempfile.mkdtemp(prefix="dd-h4-make-")
        try:
            targets = ["t%02d" % i for i in range(24)]
            with open(os.path.join(work, "Makefile"), "w") as f:
                f.write("SHELL := %s\n.SHELLFLAGS := run -- sh -c\n" % os.path.abspath(DISPATCHCTL))
                f.write("all: %s\n\tcat %s > all\n" % (" ".join(targets), " ".join(targets)))
                for t in targets:
                    f.write("%s:\n\techo $@ > $@\n" % t)
            r = subprocess.run(["make", "-j8"], cwd=work, capture_output=True, timeout=300,
                               env=ctl_env(d))
            assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
            for t in targets:
                with open(os.path.join(work, t)) as f:
                    assert f.read() == t + "\n", t
            with open(os.path.join(work, "all")) as f:
                assert f.read().split() == targets
            for where in (os.getcwd(), d.state, "/"):
                assert not os.path.exists(os.path.join(where, "t00")), where
        finally:
            shutil.rmtree(work, ignore_errors=True)



def _most_at_once(path):
    """The most jobs that ran at once, from the "<time> 1" and "<time> -1"
    lines they wrote to @path."""
    with open(path) as f:
        ev = sorted((float(t), int(k)) for t, k in (ln.split() for ln in f))
    run = most = 0
    for _, k in ev:
        run += k
        most = max(most, run)
    return most, ev


def _outlive(how):
    """Process jobs running when the daemon is killed (SIGKILL), stopped
    (SIGTERM, with jobs longer than shutdown_grace) or when its supervisor
    is killed: every job ends with its real status and its whole output,
    and the lock each attempt takes proves no two attempts of a job ever
    ran at once."""
    d = Daemon("--cpus", "16", config="[dispatchd]\nshutdown_grace = 0.5\n")
    locks = tempfile.mkdtemp(prefix="dd-locks-")

    def script(name, code):
        return ("exec 9>%s/%s.lock; flock -n 9 || { echo overlap; exit 99; }; echo start; "
                "while [ ! -e %s/%s.go ]; do sleep 0.01; done; echo end; exit %d"
                % (locks, name, locks, name, code))

    def go(name):
        open(os.path.join(locks, name + ".go"), "w").close()

    def out(c, j):
        return base64.b64decode(c.ok("output", id=j)["data"])

    try:
        with d:
            with d.client() as c:
                jobs = {"ok%d" % k: c.ok("submit", argv=["sh", "-c", script("ok%d" % k, 0)],
                                         retries=2)["id"] for k in range(4)}
                jobs["three"] = c.ok("submit", argv=["sh", "-c", script("three", 3)])["id"]
                for j in jobs.values():
                    until(lambda: out(c, j) == b"start\n", what="job %d's start" % j)
                pids = {n: until(lambda: c.ok("get", id=j)["job"].get("pid"), what="a pid")
                        for n, j in jobs.items()}
            if how == "supervisor":
                sups = supervisors(d.state)
                assert len(sups) == 1, sups
                os.kill(sups[0], signal.SIGKILL)
                with d.client() as c:
                    for n in jobs:
                        if n != "three":  # retried under a new supervisor
                            until(lambda: c.ok("get", id=jobs[n])["job"]["attempt"] == 2 and
                                  out(c, jobs[n]) == b"start\n", timeout=60,
                                  what="attempt 2 of " + n)
                        go(n)
                    for n, j in jobs.items():
                        job = c.wait(j)
                        if n == "three":
                            assert job["state"] == "failed" and job["attempt"] == 1, job
                            assert "supervisor went away" in job["reason"], job
                        else:
                            assert job["state"] == "succeeded" and job["attempt"] == 2, job
                            assert out(c, j) == b"start\nend\n", (n, out(c, j))
                return
            if how == "sigkill":
                d.kill()
            else:
                # the jobs end only at their gate: a stop that waited for
                # them would end them after shutdown_grace, and they run on
                assert d.stop() == 0
            for n, pid in pids.items():
                assert os.path.exists("/proc/%d" % pid), "%s runs on without the daemon" % n
            # one ends while no daemon runs: its supervisor reaps it
            go("three")
            until(lambda: not os.path.exists("/proc/%d" % pids["three"]), what="its exit")
            d.start()
            with d.client() as c:
                for n, j in jobs.items():
                    job = c.ok("get", id=j)["job"]
                    assert job["attempt"] == 1 and job["pid"] == pids[n], job
                    go(n)
                for n, j in jobs.items():
                    job = c.wait(j)
                    assert job["attempt"] == 1, job
                    if n == "three":
                        assert job["state"] == "failed" and job["exit_code"] == 3, job
                        assert job["reason"] == "exit 3", job
                    else:
                        assert job["state"] == "succeeded" and job["exit_code"] == 0, job
                    assert "cpu_time" in job, job
                    assert out(c, j) == b"start\nend\n", (n, out(c, j))
            assert "5 running taken over" in d.logtext(), d.logtext()
    finally:
        shutil.rmtree(locks, ignore_errors=True)


@case
def running_jobs_outlive_a_killed_daemon():
    _outlive("sigkill")


@case
def running_jobs_outlive_a_stopped_daemon():
    _outlive("sigterm")


@case
def jobs_that_end_while_the_daemon_stops_keep_their_status():
    """Jobs whose processes end while the daemon stops (between its letting
    them go and its exit) are recorded by the next daemon with their real
    status: not lost, not started again."""
    d = Daemon("--cpus", "64")
    work = tempfile.mkdtemp(prefix="dd-stopend-")
    gate = os.path.join(work, "gate")
    try:
        with d:
            with d.client() as c:
                ids = [c.ok("submit", argv=["sh", "-c", "while [ ! -e %s ]; do sleep 0.002; done; "
                                            "exit %d" % (gate, k % 3)])["id"] for k in range(40)]
                until(lambda: all(c.ok("get", id=j)["job"]["state"] == "running" for j in ids),
                      what="the jobs' starts")
            # they end over the few milliseconds of the stop
            open(gate, "w").close()
            assert d.stop() == 0
            d.start()
            with d.client() as c:
                for k, j in enumerate(ids):
                    job = c.wait(j)
                    assert job["attempt"] == 1, job
                    want = "succeeded" if k % 3 == 0 else "failed"
                    assert job["state"] == want and job["exit_code"] == k % 3, (k, job)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# A workflow as a generic cluster interface runs one (Snakemake's
# --cluster/--cluster-status, and the like): each step submitted with a
# submit command that prints the id alone, its end seen through a status
# command polled until it says success or failed, the next step submitted
# once its inputs are there.
_WORKFLOW = r"""
set -e
cd "$1"
submit() { dispatchctl submit --parsable -- "$@"; }
await() {
    while :; do
        s=$(dispatchctl status "$1")
        case "$s" in
        success) return 0 ;;
        failed) echo "step $1 failed" >&2; return 1 ;;
        pending|running) sleep 0.05 ;;
        *) echo "status: '$s'" >&2; return 2 ;;
        esac
    done
}
a=$(submit sh -c 'seq 1 100 > numbers')
await "$a"
b=$(submit sh -c 'awk "{ s += \$1 } END { print s }" numbers > sum')
c=$(submit sh -c 'wc -l < numbers > count')
await "$b"; await "$c"
d=$(submit sh -c 'echo "$(cat sum) / $(cat count)" > mean')
await "$d"
e=$(submit sh -c 'exit 4')
if await "$e"; then exit 9; fi
cat mean
"""


@case
def status_words_and_submit_wait():
    """dispatchctl status prints one word per job (pending, running,
    success, failed), for a workflow engine's status command; a workflow
    driven through submit --parsable and status runs to its end; submit
    --wait exits with its job's code."""
    with Daemon() as d:
        work = tempfile.mkdtemp(prefix="dd-status-")
        try:
            gate = os.path.join(work, "gate")
            run_id = int(d.ctl("submit", "--parsable", "--", "sh", "-c",
                               "while [ ! -e %s ]; do sleep 0.01; done" % gate, check=0).stdout)
            pend_id = int(d.ctl("submit", "--after", str(run_id), "--", "true", check=0).stdout)
            ok_id = int(d.ctl("submit", "--", "true", check=0).stdout)
            bad_id = int(d.ctl("submit", "--", "sh", "-c", "exit 3", check=0).stdout)
            with d.client() as c:
                c.wait(ok_id)
                c.wait(bad_id)
                until(lambda: c.ok("get", id=run_id)["job"]["state"] == "running",
                      what="the gated job's start")
            r = d.ctl("status", str(run_id), str(pend_id), str(ok_id), str(bad_id), check=0)
            assert r.stdout.split() == [b"running", b"pending", b"success", b"failed"], r.stdout
            r = d.ctl("--json", "status", str(ok_id), check=0)
            assert json.loads(r.stdout) == {"statuses": [{"id": ok_id, "status": "success"}]}, r.stdout
            r = d.ctl("status", "999999", check=1)
            assert r.stdout == b"unknown\n" and b"no such job" in r.stderr, (r.stdout, r.stderr)
            open(gate, "w").close()
            # submit --wait: the id, then the job's own exit code
            r = d.ctl("submit", "--wait", "--", "sh", "-c", "exit 7", check=7)
            assert r.stdout.strip().isdigit(), r.stdout
            d.ctl("submit", "--wait", "--", "true", check=0)
            d.ctl("submit", "--wait", "--", "sh", "-c", "kill -TERM $$", check=128 + 15)
            d.ctl("run", "--wait", "--", "true", check=2)
            # the workflow, as a shell script a workflow engine's generic
            # cluster interface would run
            env = dict(os.environ, DISPATCHD_SOCKET=d.sock,
                       PATH=os.path.dirname(os.path.abspath(DISPATCHCTL)) + ":" + os.environ["PATH"])
            r = subprocess.run(["bash", "-c", _WORKFLOW, "workflow", work], capture_output=True,
                               env=env, timeout=120)
            assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
            assert r.stdout == b"5050 / 100\n", r.stdout
        finally:
            shutil.rmtree(work, ignore_errors=True)


_MAKEFILE = """\
PARTS := p1 p2 p3 p4 p5 p6 p7 p8
all: sum
sum: $(PARTS)
	cat $^ | wc -l > $@
p%:
	sleep 0.3
	echo $@ > $@
bad:
	exit 3
"""


@case
def make_runs_its_recipes_through_dispatchd():
    """make -j8 with SHELL=dispatchctl: each recipe line is a job of the
    daemon, in make's directory, several at once as make schedules them;
    a failing line fails make with the job's exit code."""
    with Daemon("--cpus", "8") as d:
        work = tempfile.mkdtemp(prefix="dd-make-")
        try:
            with open(os.path.join(work, "Makefile"), "w") as f:
                f.write(_MAKEFILE)
            env = dict(os.environ, DISPATCHD_SOCKET=d.sock)
            shell = "SHELL=" + os.path.abspath(DISPATCHCTL)
            r = subprocess.run(["make", "-j8", "-C", work, shell], capture_output=True, env=env,
                               timeout=120)
            assert r.returncode == 0, (r.stdout, r.stderr)
            with open(os.path.join(work, "sum")) as f:
                assert f.read().strip() == "8"
            with d.client() as c:
                jobs = c.ok("list", limit=1000)["jobs"]
            # 8 parts of 2 lines, and the sum's
            assert len(jobs) == 17 and all(j["state"] == "succeeded" for j in jobs), jobs
            ev = sorted([(j["started_at"], 1) for j in jobs] + [(j["ended_at"], -1) for j in jobs])
            run = most = 0
            for _, k in ev:
                run += k
                most = max(most, run)
            assert most >= 2, "make -j8 ran its jobs one at a time"
            r = subprocess.run(["make", "-C", work, shell, "bad"], capture_output=True, env=env,
                               timeout=60)
            assert r.returncode == 2 and b"Error 3" in r.stderr, (r.returncode, r.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)


@case
def a_killed_supervisor_fails_and_retries_its_jobs():
    _outlive("supervisor")


def _cgroup_dirs(pid):
    """The directories of the cgroups @pid is in, one per hierarchy that
    is a dispatchd's (v2, and each v1 one it uses)."""
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for ln in f:
            pre, post = ln.split(" - ", 1)
            fs, _, opts = post.split()[:3]
            root, mnt = pre.split()[3:5]
            if fs == "cgroup2":
                mounts[""] = (root, mnt)
            elif fs == "cgroup":
                for ctl in ("memory", "pids", "cpuset"):
                    if ctl in opts.split(","):
                        mounts[ctl] = (root, mnt)
    dirs = []
    with open("/proc/%d/cgroup" % pid) as f:
        for ln in f:
            _, ctls, path = ln.rstrip("\n").split(":", 2)
            key = "" if ctls == "" else next((c for c in ctls.split(",") if c in mounts), None)
            if key is None or key not in mounts or "/dispatchd-" not in path:
                continue
            root, mnt = mounts[key]
            rel = path[len(root):] if root != "/" and path.startswith(root) else path
            dirs.append(mnt + rel)
    return dirs


@case
def a_removed_state_dir_leaves_no_job_or_cgroup_behind():
    """A daemon stopped with its jobs left running, whose state dir is then
    removed: no daemon can come back for them, so the supervisor kills
    each job's whole tree (a setsid grandchild too) and removes their
    cgroups and the daemon's subtrees, then exits."""
    if os.geteuid() != 0:
        raise Skip("needs root: cgroups")
    d = Daemon(config="[dispatchd]\nshutdown_grace = 0.5\n")
    work = tempfile.mkdtemp(prefix="dd-abandon-")
    try:
        pids = os.path.join(work, "pids")
        with d:
            with d.client() as c:
                assert c.ok("ping")["cgroups"] is True
                j = c.ok("submit", argv=["sh", "-c", "sleep 300 & echo $! > %s.t; setsid sleep 300 & "
                                         "echo $! >> %s.t; mv %s.t %s; wait" % (pids, pids, pids, pids)])["id"]
                # one whose main process ends while no daemon runs, leaving
                # a setsid grandchild in its cgroup
                gate, left = os.path.join(work, "gate"), os.path.join(work, "left")
                k = c.ok("submit", argv=["sh", "-c", "setsid sleep 300 & echo $! > %s.t; mv %s.t %s; "
                                         "while [ ! -e %s ]; do sleep 0.01; done" % (left, left, left, gate)])["id"]
                until(lambda: os.path.exists(pids) and os.path.exists(left), what="the jobs' trees")
                main = c.ok("get", id=j)["job"]["pid"]
                main_k = c.ok("get", id=k)["job"]["pid"]
            with open(pids) as f:
                tree = [main] + [int(x) for x in f.read().split()]
            with open(left) as f:
                orphan = int(f.read())
            dirs = _cgroup_dirs(main) + _cgroup_dirs(main_k)
            assert len(dirs) >= 2 and all(os.path.isdir(x) for x in dirs), dirs
            sups = supervisors(d.state)
            assert len(sups) == 1, sups
            assert d.stop() == 0
            assert all(not gone(p) for p in tree + [orphan]), "the stop left them running"
            open(gate, "w").close()
            until(lambda: gone(main_k), what="the second job's main process to end")
            tree.append(orphan)
            shutil.rmtree(d.state)
            until(lambda: all(gone(p) for p in tree), timeout=30, what="the tree killed")
            until(lambda: gone(sups[0]), timeout=30, what="the supervisor's exit")
            left = [x for x in dirs + [os.path.dirname(x) for x in dirs] if os.path.exists(x)]
            assert not left, "left behind: %s" % left
    finally:
        shutil.rmtree(work, ignore_errors=True)


@case
def without_the_supervisor_running_jobs_end_with_the_daemon():
    """--supervisor off: jobs start in the daemon; a stop ends them, and
    the next start retries them."""
    d = Daemon("--supervisor", "off", config="[dispatchd]\nshutdown_grace = 0.5\n")
    with d:
        with d.client() as c:
            assert c.ok("ping")["supervisor_status"].startswith("off"), c.ok("ping")
            j = c.ok("submit", argv=["sleep", "60"], retries=1)["id"]
            pid = until(lambda: c.ok("get", id=j)["job"].get("pid"), what="its start")
        assert d.stop() == 0
        assert not os.path.exists("/proc/%d" % pid)
        d.start()
        with d.client() as c:
            # retried: its second attempt starts
            job = until(lambda: (lambda g: g if g["attempt"] == 2 else None)(
                c.ok("get", id=j)["job"]), what="attempt 2")
            assert job["state"] == "running", job
            c.ok("cancel", id=j)
    d = Daemon("--supervisor", "/nonexistent/dispatchd-supervisor")
    with d, d.client() as c:
        st = c.ok("ping")["supervisor_status"]
        assert st.startswith("unavailable: cannot start /nonexistent/dispatchd-supervisor"), st
        assert "process supervisor unavailable" in d.logtext()
        j = c.ok("submit", argv=["true"])["id"]
        assert c.wait(j)["state"] == "succeeded"  # the engine starts them itself


@case
def process_trees():
    """A job is its whole tree: what it leaves behind is gone when it ends
    (dispatchctl run included), --mem fails it "out of memory", get shows
    cpu_time and mem_peak, ping and stats say where the cgroups are; a
    daemon of a user without a delegated cgroup says why it has none, and
    --cgroups on refuses to start there."""
    if os.geteuid() != 0:
        raise Skip("needs root: cgroups, and the user ddh19a")
    with Daemon() as d, d.client() as c:
        pong = c.ok("ping")
        assert pong["cgroups"] is True and pong["cgroup_status"].startswith("cgroup2 "), pong
        work = tempfile.mkdtemp(prefix="dd-h19-")
        try:
            pids = os.path.join(work, "pids")
            j = c.ok("submit", argv=["sh", "-c", "sleep 300 & echo $! > %s; setsid sleep 300 & "
                                     "echo $! >> %s; exit 0" % (pids, pids)])["id"]
            job = c.wait(j)
            assert job["state"] == "succeeded", job
            with open(pids) as f:
                left = [int(x) for x in f.read().split()]
            assert len(left) == 2 and all(gone(p) for p in left), left
            assert job["cpu_time"] >= 0 and job["mem_peak"] > 0, job
            # through dispatchctl run, as a person would
            r = d.ctl("run", "--mem", "32M", "--", "python3", "-c", "x = bytearray(256 << 20)",
                      check=128 + 9)
            r = d.ctl("--json", "list")
            jobs = json.loads(r.stdout)["jobs"]
            oom = [x for x in jobs if x["reason"].startswith("out of memory")]
            assert len(oom) == 1 and oom[0]["reason"] == "out of memory: limit 32 MiB", jobs
            r = d.ctl("get", str(oom[0]["id"]))
            assert b"usage:" in r.stdout and b"memory peak" in r.stdout, r.stdout
            st = c.ok("stats")["processes"]
            assert st["cgroups"] and st["oom"] == 1 and st["leftovers"] == 1, st
            r = d.ctl("ping")
            assert b"process jobs: in cgroups: cgroup2 " in r.stdout, r.stdout
        finally:
            shutil.rmtree(work, ignore_errors=True)
    with RealUsers("ddh19a") as (alice,):
        # a socket directory of alice's own, fresh each run
        sockdir = tempfile.mkdtemp(prefix="dd-h19s-")
        os.chown(sockdir, alice.pw_uid, alice.pw_gid)
        sock = os.path.join(sockdir, "a.sock")
        ud = UserDaemon(alice, "--socket", sock)
        try:
            ud.wait_ready(sock)
            with Client(sock) as c:
                pong = c.ok("ping")
                assert pong["cgroups"] is False, pong
                assert pong["cgroup_status"].startswith("unavailable: cannot create cgroup"), pong
                assert "not root, and no cgroup delegated to this user" in pong["cgroup_status"], pong
                # the process-group path still runs jobs; a limit is refused, saying why
                j = c.ok("submit", argv=["true"])["id"]
                assert c.wait(j)["state"] == "succeeded"
                j = c.ok("submit", argv=["true"], mem=1 << 25)["id"]
                job = c.wait(j)
                assert job["state"] == "failed" and "a memory limit needs cgroups" in job["reason"], job
                assert "cpu_time" not in job, job
            assert "cgroups unavailable: cannot create cgroup" in ud.logtext(), ud.logtext()
        finally:
            ud.close()
        on = UserDaemon(alice, "--socket", os.path.join(sockdir, "b.sock"), "--cgroups", "on")
        try:
            rc = on.proc.wait(30)
            assert rc == 1 and "cgroups unavailable" in on.logtext(), (rc, on.logtext())
        finally:
            on.close()
            shutil.rmtree(sockdir, ignore_errors=True)



@case
def process_pool():
    """dispatchd --cpus 2: six one-CPU jobs never run three at once (from
    their own start and end times); --cpus 3 is refused at submit with the
    pool's size; stats show the pool; --cpus 0 runs no process job."""
    with Daemon("--cpus", "2") as d, d.client() as c:
        work = tempfile.mkdtemp(prefix="dd-h19p-")
        try:
            times = os.path.join(work, "times")
            ids = [int(d.ctl("submit", "--", "sh", "-c",
                             "read a b < /proc/uptime; echo \"$a 1\" >> %s; sleep 0.3; "
                             "read a b < /proc/uptime; echo \"$a -1\" >> %s" % (times, times)
                             ).stdout) for _ in range(6)]
            for j in ids:
                assert c.wait(j)["state"] == "succeeded"
            most, ev = _most_at_once(times)
            assert most == 2, ev
            r = d.ctl("submit", "--cpus", "3", "--", "true", check=1)
            assert b"more CPUs or memory than the engine's pool holds (2 CPUs" in r.stderr, r.stderr
            pool = c.ok("stats")["processes"]["pool"]
            assert pool["cpus"] == 2 and pool["cpus_free"] == 2 and pool["waiting"] == 0, pool
        finally:
            shutil.rmtree(work, ignore_errors=True)
    with Daemon("--cpus", "0") as d, d.client() as c:
        j = c.ok("submit", argv=["true"])["id"]
        until(lambda: c.ok("stats")["processes"]["pool"]["waiting"] == 1)
        assert c.ok("get", id=j)["job"]["state"] == "queued"
        # in-process jobs are not the pool's
        assert c.wait(c.ok("submit", queue="dispatchd.noop")["id"])["state"] == "succeeded"


@case
def process_limits():
    """[limits] user.* = 1: a user's jobs run one at a time (from their own
    start and end times), a held one says why; a SIGHUP with user.* = 3
    lets the held ones go at once; a bad limit is refused at start."""
    d = Daemon("--cpus", "8", config="[limits]\nuser.* = 1\n")
    work = tempfile.mkdtemp(prefix="dd-h19l-")
    try:
        with d, d.client() as c:
            times, gate = os.path.join(work, "times"), os.path.join(work, "gate")
            ids = [c.ok("submit", argv=["sh", "-c",
                                        "read a b < /proc/uptime; echo \"$a 1\" >> %s; "
                                        "while [ ! -e %s ]; do sleep 0.01; done; "
                                        "read a b < /proc/uptime; echo \"$a -1\" >> %s"
                                        % (times, gate, times)])["id"] for _ in range(3)]
            until(lambda: os.path.exists(times))
            held = [c.ok("get", id=j)["job"] for j in ids[1:]]
            assert all(j["state"] == "queued" and
                       j["reason"] == "waiting: its owner's limit of running process jobs"
                       for j in held), held
            with open(os.path.join(d.dir, "dispatchd.ini"), "w") as f:
                f.write("[limits]\nuser.* = 3\n")
            d.send_signal(signal.SIGHUP)
            until(lambda: len(open(times).read().split("\n")) > 3, what="the held jobs' start")
            open(gate, "w").close()
            for j in ids:
                assert c.wait(j)["state"] == "succeeded"
            _, ev = _most_at_once(times)
            # one, then the other two with it after the raise: every start
            # before every end (the gate opened once all three had begun;
            # /proc/uptime's 10 ms steps may give a start and an end the
            # same time)
            starts = [t for t, k in ev if k == 1]
            ends = [t for t, k in ev if k == -1]
            assert len(starts) == 3 and max(starts) <= min(ends), ev
            assert "SIGHUP: 1 limits on running process jobs" in d.logtext(), d.logtext()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    d = Daemon(config="[limits]\nuser.nosuchuser = 2\n", autostart=False)
    with d:
        d.start(wait=False)
        assert d.proc.wait(20) == 2, d.logtext()
        assert "no user nosuchuser" in d.logtext(), d.logtext()


@case
def job_arrays():
    """submit --array (Slurm's syntax): one id for the array and one per
    element, each element seeing its index as DD_ARRAY_INDEX and
    SLURM_ARRAY_TASK_ID; %MAX caps the elements running at once; get shows
    the counts by state, list --array the elements, status and wait the
    whole; cancel of the array is one operation; an array goes on across a
    restart of the daemon without running an element twice."""
    d = Daemon("--cpus", "8")
    work = tempfile.mkdtemp(prefix="dd-array-")
    try:
        with d:
            # every element once, its index and its array in its environment
            arr = int(d.ctl("submit", "--parsable", "--array", "1-9:2,20%2", "--", "sh", "-c",
                            "echo $DD_ARRAY_ID $DD_ARRAY_INDEX $SLURM_ARRAY_JOB_ID "
                            "$SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT; "
                            "[ $DD_ARRAY_INDEX != 5 ]", check=0).stdout)
            r = d.ctl("wait", str(arr), check=1)
            with d.client() as c:
                job = c.ok("get", id=arr)["job"]
                assert job["state"] == "failed", job
                assert job["array"] == {"count": 6, "states": {"succeeded": 5, "failed": 1}}, job
                assert job["reason"] == "1 of 6 elements did not succeed", job
                listed = c.ok("list", array=arr)["jobs"]
                assert [j["array_index"] for j in listed] == [1, 3, 5, 7, 9, 20], listed
                assert [j["id"] for j in listed] == [arr + k for k in range(1, 7)], listed
                for j in listed:
                    out = base64.b64decode(c.ok("output", id=j["id"])["data"]).decode()
                    assert out == "%d %d %d %d 6\n" % (arr, j["array_index"], arr,
                                                       j["array_index"]), out
                    want = "failed" if j["array_index"] == 5 else "succeeded"
                    assert j["state"] == want and j["array_id"] == arr, j
                failed = c.ok("list", array=arr, state="failed")["jobs"]
                assert [j["array_index"] for j in failed] == [5], failed
            r = d.ctl("status", str(arr), str(arr + 1), str(arr + 3), check=0)
            assert r.stdout.split() == [b"failed", b"success", b"failed"], r.stdout
            r = d.ctl("get", str(arr), check=0)
            assert b"array:     6 elements: 5 succeeded, 1 failed" in r.stdout, r.stdout
            r = d.ctl("submit", "--array", "5-1", "--", "true", check=1)
            assert b"backwards" in r.stderr, r.stderr
            r = d.ctl("run", "--array", "1-3", "--", "true", check=2)

            # %MAX, in the submitter's directory
            arr = int(ctl_in(d, work, "submit", "--array", "0-5%2", "--", "sh", "-c",
                               "echo \"$(date +%s.%N) 1\" >> times; sleep 0.3; "
                               "echo \"$(date +%s.%N) -1\" >> times", check=0).stdout)
            d.ctl("wait", str(arr), check=0)
            most, ev = _most_at_once(os.path.join(work, "times"))
            assert most == 2 and len(ev) == 12, (most, ev)

            # a million pending, cancelled in one operation
            with d.client() as c:
                gate = c.ok("submit", argv=["sleep", "600"])["id"]
                big = c.ok("submit", argv=["true"], after=[gate], array="0-999999")["id"]
                job = c.ok("get", id=big)["job"]
                assert job["array"] == {"count": 1000000, "states": {"waiting": 1000000}}, job
                el = c.ok("get", id=big + 500001)["job"]
                assert el["state"] == "waiting" and el["array_index"] == 500000, el
                c.ok("cancel", id=big)
                job = c.wait(big)
                assert job["state"] == "cancelled", job
                assert job["array"]["states"] == {"cancelled": 1000000}, job
                c.ok("cancel", id=gate)

                # across a restart: what ended stays ended, the rest runs
                locks = os.path.join(work, "locks")
                os.mkdir(locks)
                arr = c.ok("submit", argv=["sh", "-c",
                                           "exec 9>>%s/$DD_ARRAY_INDEX; flock -n 9 || exit 99; "
                                           "echo run >&9; while [ ! -e %s/go ] && "
                                           "[ $DD_ARRAY_INDEX -ge 3 ]; do sleep 0.01; done"
                                           % (locks, work)], array="0-9%4", retries=2)["id"]
                until(lambda: c.ok("get", id=arr)["job"]["array"]["states"] ==
                      {"succeeded": 3, "running": 4, "queued": 3}, what="3 done, 4 running")
            assert d.stop() == 0
            d.start()
            open(os.path.join(work, "go"), "w").close()
            with d.client() as c:
                job = c.wait(arr)
                assert job["state"] == "succeeded", job
                assert job["array"]["states"] == {"succeeded": 10}, job
                for k in range(10):
                    with open(os.path.join(locks, str(k))) as f:
                        runs = f.read()
                    assert runs == "run\n", "element %d: %r" % (k, runs)
                    j = c.ok("get", id=arr + 1 + k)["job"]
                    assert j["attempt"] == 1, j
    finally:
        shutil.rmtree(work, ignore_errors=True)



@case
def names_commands_and_users():
    """--name (Slurm's -J): list, get and top show a job's name, command
    and working directory and its owner's user name; list --name and
    list --user pick jobs out; a name over 128 bytes is refused."""
    import pwd
    me = pwd.getpwuid(os.getuid()).pw_name
    with Daemon() as d:
        work = tempfile.mkdtemp(prefix="dd-names-")
        try:
            a = int(ctl_in(d, work, "submit", "--name", "align", "--", "sleep", "30", check=0).stdout)
            b = int(ctl_in(d, work, "submit", "-J", "sort", "--array", "1-2", "--", "true",
                           check=0).stdout)
            d.ctl("wait", str(b), check=0)
            with d.client() as c:
                until(lambda: c.ok("get", id=a)["job"]["state"] == "running", what="its start")
                job = c.ok("get", id=a)["job"]
                assert (job["name"], job["command"], job["cwd"]) == ("align", "sleep 30", work), job
                el = c.ok("get", id=b + 2)["job"]
                assert el["name"] == "sort" and el["array_index"] == 2, el
                assert [j["id"] for j in c.ok("list", name="sort")["jobs"]] == [b, b + 1, b + 2]
                assert c.ok("list", uid=os.getuid() + 12345)["jobs"] == []
                c.err("submit", "EINVAL", argv=["true"], name="x" * 129)
            r = d.ctl("list", "--name", "align", check=0)
            rows = r.stdout.decode().splitlines()
            assert len(rows) == 2 and rows[1].split()[:4] == [str(a), "running", "align", me], rows
            assert "sleep 30" in rows[1], rows
            r = d.ctl("list", "--user", me, check=0)
            assert len(r.stdout.decode().splitlines()) == 1 + 4, r.stdout
            r = d.ctl("list", "--user", "no-such-user-here", check=2)
            r = d.ctl("get", str(a), check=0)
            for want in ("name:      align", "command:   sleep 30", "cwd:       " + work,
                         "owner:     %s (uid" % me):
                assert want.encode() in r.stdout, (want, r.stdout)
            r = d.ctl("top", "--count", "1", check=0)
            assert b"align" in r.stdout and b"sleep 30" in r.stdout, r.stdout
            r = d.ctl("list", check=0)
            assert b"sort[2]" in r.stdout, r.stdout
            d.ctl("cancel", str(a), check=0)
        finally:
            shutil.rmtree(work, ignore_errors=True)


@case
def batch_scripts_outputs_and_dependency_kinds():
    """submit SCRIPT reads the script's #DD lines as options (the command
    line's win) and runs the script as it was at the submit; --output and
    --error name files by pattern in the job's directory; --dependency
    takes Slurm's kinds, and a dependency never met names itself."""
    with Daemon() as d:
        work = tempfile.mkdtemp(prefix="dd-script-")
        try:
            script = os.path.join(work, "job.sh")
            with open(script, "w") as f:
                f.write("#!/bin/sh\n# a comment\n#DD --name from-script --array 1-3%2\n"
                        "#DD --output 'out %x-%a.txt' -J replaced\n\n"
                        "echo \"$DD_ARRAY_INDEX $0 $*\"; echo to-err >&2\n#DD --name never\n")
            arr = int(ctl_in(d, work, "submit", "-J", "cli", "job.sh", "a", "b c", check=0).stdout)
            os.unlink(script)  # ran as it was at the submit
            d.ctl("wait", str(arr), check=0)
            for k in (1, 2, 3):
                with open(os.path.join(work, "out cli-%d.txt" % k)) as f:
                    assert f.read() == "%d %s a b c\nto-err\n" % (k, script), k
            with d.client() as c:
                job = c.ok("get", id=arr)["job"]
                assert job["name"] == "cli" and job["command"] == script + " a b c", job
            with open(script, "w") as f:
                f.write("#!/bin/sh\n#DD --no-such-option\ntrue\n")
            r = ctl_in(d, work, "submit", "job.sh", check=2)
            assert b"no-such-option" in r.stderr, r.stderr
            with open(script, "w") as f:
                f.write("#!/bin/sh\n#DD 'unclosed\ntrue\n")
            r = ctl_in(d, work, "submit", "job.sh", check=2)
            assert b"line 2" in r.stderr, r.stderr
            # --output alone takes stderr too; --error alone, stderr alone
            j1 = int(ctl_in(d, work, "submit", "--output", "o-%j", "--error", "e-%j", "--", "sh",
                            "-c", "echo o; echo e >&2", check=0).stdout)
            j2 = int(ctl_in(d, work, "submit", "--error", "only-%j", "--", "sh", "-c",
                            "echo kept; echo e >&2", check=0).stdout)
            d.ctl("wait", str(j1), str(j2), check=0)
            assert open(os.path.join(work, "o-%d" % j1)).read() == "o\n"
            assert open(os.path.join(work, "e-%d" % j1)).read() == "e\n"
            assert open(os.path.join(work, "only-%d" % j2)).read() == "e\n"
            with d.client() as c:
                assert base64.b64decode(c.ok("output", id=j2)["data"]) == b"kept\n"
                c.err("submit", "EINVAL", argv=["true"], output="x-%q")
            # dependency kinds
            bad = int(d.ctl("submit", "--", "false", check=0).stdout)
            ok = int(d.ctl("submit", "--", "true", check=0).stdout)
            any_ = int(d.ctl("submit", "--dependency", "afterany:%d:%d" % (bad, ok), "--", "true",
                             check=0).stdout)
            notok = int(d.ctl("submit", "--dependency", "afternotok:%d" % bad, "--", "true",
                              check=0).stdout)
            never = int(d.ctl("submit", "--dependency", "afternotok:%d" % ok, "--", "true",
                              check=0).stdout)
            d.ctl("wait", str(any_), str(notok), check=0)
            with d.client() as c:
                job = c.wait(never)
                assert job["state"] == "failed", job
                assert job["reason"] == "dependency afternotok:%d succeeded" % ok, job
            r = d.ctl("submit", "--dependency", "singleton", "--", "true", check=1)
            assert b"not a dependency kind" in r.stderr, r.stderr
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_cases(CASES, "daemon"))
