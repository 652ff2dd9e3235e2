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
from harness import Client, Daemon, Skip, run_cases, until  # noqa: E402

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
        assert a.ok("submit_batch", jobs=jobs[:10])["ids"], "and submits again once the store moves"
    # a drain refuses what is still held, and says so before it closes
    with Daemon(config="store_lag_max = 1024\nsubmit_wait = 30\n") as d, d.client() as a:
        with StoreHeld(d):
            held = submit_until_held(a, jobs)
            d.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # the engine's stop waits for the store: let it go then
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
        time.sleep(0.4)  # the lease runs out: the job is queued again
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
        assert job["state"] == "failed" and job["reason"] == "No such file or directory", job
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
        assert base64.b64decode(c.ok("output", id=j)["data"]) == \
            b"bar\n[dispatchd: 3 bytes cut here]\nmp\n"
        j = c.ok("submit", argv=["sh", "-c", "ulimit -n"], rlimits={"nofile": 99})["id"]
        c.wait(j)
        assert base64.b64decode(c.ok("output", id=j)["data"]) == b"99\n"
        # dispatchctl run: output streamed, its exit code passed on
        r = d.ctl("run", "--", "sh", "-c", "echo out; echo err >&2; exit 4", check=4)
        assert r.stdout == b"out\n" and r.stderr == b"err\n", r
        r = d.ctl("run", "--", "sh", "-c", "kill -KILL $$", check=128 + 9)
        d.ctl("run", "--", "true", check=0)
        r = d.ctl("run", "--", "/no/such/thing", check=1)
        assert b"No such file" in r.stderr


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
            # it was running at the stop: retried (attempt 2 of 2)
            assert job["attempt"] == 2 and job["state"] in ("queued", "running"), job
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
        assert res["reserve"] is None, "another user's job was leased: %s" % res
        assert res["get"] == "running"
        assert res["mine"]["uid"] == other and res["mine_out"] == "%d\n" % other, res
        assert res["drain"] == "EPERM"
        with d.client() as c:
            assert c.ok("get", id=root_job)["job"]["state"] == "running"
            c.ok("cancel", id=root_job)


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
        d.send_signal(signal.SIGPIPE)  # ignored
        time.sleep(0.1)
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
        assert out.count("per second") == 2 and "dispatch" in out and "durable_ack" in out, out
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


if __name__ == "__main__":
    sys.exit(run_cases(CASES, "daemon"))
