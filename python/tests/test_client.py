"""The Python client against a real dispatchd: $DISPATCHD (default the
build tree's), started here on a state directory of its own, its process
jobs real processes."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import dispatchd  # noqa: E402

DISPATCHD = os.environ.get("DISPATCHD", "build/daemon/dispatchd")


def until(pred, timeout=60, what="a condition"):
    """Polls @pred (a short sleep apart) until it holds; the value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


class Daemon:
    """A dispatchd on a new state directory; stopped, and its directory
    removed (its supervisor then ends what it held), at the end."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="dd-py-")
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "sock")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            [DISPATCHD, "--state-dir", os.path.join(self.dir, "state"), "--socket", self.sock]
            + list(extra), stdout=self.log, stderr=subprocess.STDOUT)
        until(lambda: os.path.exists(self.sock) or self.proc.poll() is not None,
              what="dispatchd's socket")
        if self.proc.poll() is not None:
            raise AssertionError("dispatchd exited: " + self.logtext())

    def logtext(self):
        with open(os.path.join(self.dir, "log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon()
        cls.work = tempfile.mkdtemp(prefix="dd-pywork-")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        shutil.rmtree(cls.work, ignore_errors=True)

    def client(self):
        return dispatchd.Client(self.d.sock)

    def test_a_job_runs_where_and_as_the_caller_is(self):
        with self.client() as d:
            os.environ["DD_PY_TEST"] = "from-the-caller"
            try:
                job, out, err = d.run(["sh", "-c", "pwd; echo $DD_PY_TEST; echo oops >&2; exit 3"],
                                      cwd=self.work)
            finally:
                del os.environ["DD_PY_TEST"]
            self.assertEqual(job["state"], "failed")
            self.assertEqual(job["exit_code"], 3)
            self.assertEqual(dispatchd.exit_code(job), 3)
            self.assertEqual(out, ("%s\nfrom-the-caller\n" % os.path.realpath(self.work)).encode())
            self.assertEqual(err, b"oops\n")
            self.assertEqual(d.status([job["id"]]), ["failed"])
            job, out, _ = d.run(["true"])
            self.assertEqual((job["state"], dispatchd.exit_code(job), out), ("succeeded", 0, b""))

    def test_errors_carry_the_daemons_code(self):
        with self.client() as d:
            with self.assertRaises(dispatchd.Error) as e:
                d.get(999999999)
            self.assertEqual(e.exception.code, "ENOENT")
            jid = d.submit(["sleep", "30"])
            with self.assertRaises(dispatchd.Error) as e:
                d.wait(jid, timeout=0.1)
            self.assertEqual(e.exception.code, "ETIMEDOUT")
            with self.assertRaises(dispatchd.Error) as e:
                d.call("submit", argv=["true"], bogus=1)
            self.assertEqual(e.exception.code, "EINVAL")
            d.cancel(jid)
            # the connection goes on after errors
            self.assertTrue(d.ping()["pong"])

    def test_a_batch_and_status_words(self):
        with self.client() as d:
            gate = os.path.join(self.work, "gate")
            held = d.submit(["sh", "-c", "while [ ! -e %s ]; do sleep 0.01; done" % gate])
            after = d.submit(["true"], after=[held])
            until(lambda: d.get(held)["state"] == "running", what="the gated job's start")
            self.assertEqual(d.status([held, after]), ["running", "pending"])
            open(gate, "w").close()
            jobs = [d.job_fields(["sh", "-c", "exit %d" % (k % 2)]) for k in range(40)]
            ids = d.submit_batch(jobs)
            self.assertEqual(len(ids), 40)
            ended = d.wait(ids)
            self.assertEqual([dispatchd.exit_code(j) for j in ended], [k % 2 for k in range(40)])
            self.assertEqual(d.status(ids), ["success", "failed"] * 20)
            self.assertEqual(d.wait(after)["state"], "succeeded")
            listed = {j["id"] for j in d.list(state="failed")}
            self.assertTrue({ids[k] for k in range(1, 40, 2)} <= listed)

    def test_cancel_and_signal(self):
        with self.client() as d:
            ready = os.path.join(self.work, "trapped")
            jid = d.submit(["sh", "-c", "trap 'exit 42' USR1; touch %s; "
                            "while :; do sleep 0.01; done" % ready])
            until(lambda: os.path.exists(ready), what="its trap")
            d.signal(jid, "USR1")
            self.assertEqual(d.wait(jid)["exit_code"], 42)
            jid = d.submit(["sleep", "30"])
            until(lambda: d.get(jid)["state"] == "running", what="its start")
            d.cancel(jid)
            job = d.wait(jid)
            self.assertEqual((job["state"], job["signal"]), ("cancelled", signal.SIGTERM))
            self.assertEqual(dispatchd.exit_code(job), 128 + signal.SIGTERM)

    def test_watch_sees_each_state(self):
        with self.client() as w, self.client() as d:
            gate = os.path.join(self.work, "watchgate")
            first = d.submit(["sh", "-c", "while [ ! -e %s ]; do sleep 0.01; done" % gate])
            jid = d.submit(["true"], after=[first])  # waits for first, watched from before
            events = w.watch(ids=[jid])
            open(gate, "w").close()
            states = []
            for ev in events:
                self.assertEqual(ev["id"], jid)
                states.append(ev["state"])
                if ev["state"] == "succeeded":
                    break
            self.assertEqual(states, ["queued", "running", "succeeded"])
            w.unwatch()
            self.assertTrue(w.ping()["pong"])

    def test_an_array_its_elements_and_its_watch(self):
        with self.client() as d:
            gate = os.path.join(self.work, "array-gate")
            arr = d.submit_array(["sh", "-c", "while [ ! -e %s ]; do sleep 0.01; done; "
                                  "echo $DD_ARRAY_INDEX; [ $DD_ARRAY_INDEX != 4 ]" % gate],
                                 "0-4%2", name="py-array", output=os.path.join(self.work, "a-%a"))
            events = d.watch(ids=[arr])
            open(gate, "w").close()
            job = d.wait(arr)
            self.assertEqual(job["state"], "failed")
            self.assertEqual(job["array"], {"count": 5, "states": {"succeeded": 4, "failed": 1}})
            els = list(d.elements(arr))
            self.assertEqual([e["array_index"] for e in els], [0, 1, 2, 3, 4])
            self.assertEqual([e["id"] for e in els], [arr + 1 + k for k in range(5)])
            self.assertTrue(all(e["name"] == "py-array" for e in els))
            for k in range(5):
                with open(os.path.join(self.work, "a-%d" % k)) as f:
                    self.assertEqual(f.read(), "%d\n" % k)
            seen = set()
            for ev in events:
                if ev.get("array_id") == arr and ev["state"] in ("succeeded", "failed"):
                    seen.add(ev["array_index"])
                if ev["id"] == arr and ev["state"] == "failed":
                    break
            self.assertEqual(seen, {0, 1, 2, 3, 4})
            d.unwatch()
            self.assertEqual(d.status([arr, arr + 1, arr + 5]), ["failed", "success", "failed"])
            # dependency kinds
            bad = d.submit(["false"])
            after = d.submit(["true"], dependency="afternotok:%d" % bad)
            self.assertEqual(d.wait(after)["state"], "succeeded")
            never = d.submit(["true"], dependency="afterok:%d" % bad)
            self.assertEqual(d.wait(never)["reason"], "dependency afterok:%d did not succeed" % bad)

    def test_an_external_worker_leases_acks_and_nacks(self):
        with self.client() as d:
            payload = b"\xff\x00binary"
            jid = d.submit_queued("pyq", payload, retries=1)
            lease = d.reserve("pyq", ttr=30, timeout=5)
            self.assertEqual((lease["id"], lease["attempt"]), (jid, 1))
            self.assertEqual(lease["data"], payload)
            d.touch(jid, 1, ttr=30)
            d.nack(jid, 1)
            lease = d.reserve("pyq", ttr=30, timeout=5)
            self.assertEqual((lease["id"], lease["attempt"]), (jid, 2))
            d.ack(jid, 2)
            with self.assertRaises(dispatchd.Error) as e:
                d.ack(jid, 1)
            self.assertIn(e.exception.code, ("ESTALE", "ETERMINAL"))
            self.assertEqual(d.wait(jid)["state"], "succeeded")
            self.assertIsNone(d.reserve("pyq", timeout=0.05))

    def test_another_users_daemon_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: a socket listened on by another uid (nobody)")
        tmp = tempfile.mkdtemp(prefix="dd-pyother-")
        os.chmod(tmp, 0o777)
        path = os.path.join(tmp, "sock")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                os.setgid(65534)
                os.setuid(65534)
                s = socket.socket(socket.AF_UNIX)
                s.bind(path)
                os.chmod(path, 0o777)
                s.listen(1)
                os.write(w, b"x")
                conn, _ = s.accept()
                conn.recv(1)
            finally:
                os._exit(0)
        os.close(w)
        try:
            self.assertEqual(os.read(r, 1), b"x")
            with self.assertRaises(PermissionError) as e:
                dispatchd.Client(path)
            self.assertIn("uid 65534", str(e.exception))
        finally:
            os.close(r)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            shutil.rmtree(tmp, ignore_errors=True)


class TcpTest(unittest.TestCase):
    def test_tcp_with_its_token(self):
        tmp = tempfile.mkdtemp(prefix="dd-pytcp-")
        try:
            tok = os.path.join(tmp, "token")
            with open(tok, "w") as f:
                f.write("s3cret-token-for-the-python-test\n")
            os.chmod(tok, 0o600)
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            d = Daemon("--listen", "127.0.0.1:%d" % port, "--token-file", tok)
            try:
                with dispatchd.Client(address="127.0.0.1:%d" % port, token_file=tok) as c:
                    self.assertTrue(c.ping()["pong"])
                    jid = c.submit(["true"])
                    self.assertEqual(c.wait(jid)["state"], "succeeded")
                with self.assertRaises((dispatchd.Error, ConnectionError)):
                    with dispatchd.Client(address="127.0.0.1:%d" % port, token="wrong") as c:
                        c.ping()
            finally:
                d.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
