"""The client: one connection to a dispatchd, its requests pipelined and
matched by tag (docs/PROTOCOL.md). Not shared between threads: each thread
makes its own."""
import base64
import json
import os
import socket
import stat
import struct

ROOT_SOCKET = "/run/dispatchd/dispatchd.sock"

# the words of `dispatchctl status`: what a workflow engine's status command prints
_STATUS = {"waiting": "pending", "delayed": "pending", "queued": "pending",
           "running": "running", "succeeded": "success"}


class Error(Exception):
    """An error answer: `code` is the daemon's ("ENOENT", "EPERM", ...)."""

    def __init__(self, code, message, detail=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.detail = detail or {}


def default_socket():
    """The socket dispatchctl would use: $DISPATCHD_SOCKET; else root's for
    root; else $XDG_RUNTIME_DIR/dispatchd.sock when that is the caller's own
    directory, else /tmp/dispatchd-UID/dispatchd.sock."""
    env = os.environ.get("DISPATCHD_SOCKET")
    if env:
        return env
    me = os.geteuid()
    if me == 0:
        return ROOT_SOCKET
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    try:
        st = os.stat(xdg) if xdg.startswith("/") else None
    except OSError:
        st = None
    if st and stat.S_ISDIR(st.st_mode) and st.st_uid == me:
        return os.path.join(xdg, "dispatchd.sock")
    return "/tmp/dispatchd-%d/dispatchd.sock" % me


def _umask():
    m = os.umask(0o022)
    os.umask(m)
    return m


def exit_code(job):
    """A job's end as a command's exit code: its own, 128 + the signal
    that ended it, else 0 if it succeeded and 1 if not."""
    if isinstance(job.get("exit_code"), int):
        return job["exit_code"]
    if isinstance(job.get("signal"), int):
        return 128 + job["signal"]
    return 0 if job.get("state") == "succeeded" else 1


class Client:
    """A connection to dispatchd.

    Client() reaches the default socket; Client(socket=PATH) another one;
    Client(address="HOST:PORT", token=... or token_file=...) a daemon's TCP
    listener, where the token authenticates as the daemon's own user.
    """

    def __init__(self, socket_path=None, address=None, token=None, token_file=None,
                 timeout=None):
        self._tag = 0
        self._held = {}      # answers that came before they were asked for
        self._events = []    # watch events not yet taken
        if address:
            host, _, port = address.rpartition(":")
            host = host.strip("[]") or "127.0.0.1"
            self._sock = socket.create_connection((host, int(port)), timeout=timeout)
            self._sock.settimeout(None)
            if token_file:
                if os.stat(token_file).st_mode & 0o077:
                    raise PermissionError("%s: group or others may read it" % token_file)
                with open(token_file) as f:
                    token = f.read().strip()
            if not token:
                raise ValueError("a TCP daemon needs its token (token= or token_file=)")
            self._file = self._sock.makefile("rb")
            try:
                self.call("auth", token=token)
            except Exception:
                self.close()
                raise
            return
        path = socket_path or default_socket()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(path)
            # only a daemon of our own uid or root's: another user's daemon
            # on this path would run our jobs as that user
            _, uid, _ = struct.unpack("3i", self._sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        except OSError:
            self._sock.close()
            raise
        if uid not in (0, os.geteuid()):
            self._sock.close()
            raise PermissionError("%s: its daemon runs as uid %d, neither the caller nor root"
                                  % (path, uid))
        self._file = self._sock.makefile("rb")

    # ---- the connection ----

    def close(self):
        self._file.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, op, **fields):
        """Sends one request without waiting; returns its tag."""
        self._tag += 1
        fields.update(op=op, tag=self._tag)
        self._sock.sendall(json.dumps(fields).encode() + b"\n")
        return self._tag

    def _read(self):
        line = self._file.readline()
        if not line:
            raise ConnectionError("dispatchd closed the connection")
        return json.loads(line)

    def answer(self, tag):
        """The result of request @tag, waiting for it; raises Error."""
        while tag not in self._held:
            msg = self._read()
            if "event" in msg:
                self._events.append(msg["event"])
            else:
                self._held[msg.get("tag")] = msg
        msg = self._held.pop(tag)
        if not msg.get("ok"):
            e = msg.get("error", {})
            raise Error(e.get("code", "?"), e.get("message", ""), e)
        return msg["result"]

    def call(self, op, **fields):
        """One request and its result."""
        return self.answer(self.send(op, **fields))

    # ---- jobs ----

    def job_fields(self, argv, cwd=None, env=None, env_replace=None, umask=None, **fields):
        """A process job's fields, as dispatchctl submits them: in the
        caller's directory, environment and umask unless told otherwise."""
        job = dict(fields, argv=list(argv))
        job["cwd"] = os.path.abspath(cwd if cwd is not None else os.getcwd())
        if env is None:
            env, env_replace = dict(os.environ), True
        job["env"] = dict(env)
        if env_replace is not None:
            job["env_replace"] = env_replace
        job["umask"] = _umask() if umask is None else umask
        return job

    def submit(self, argv, **fields):
        """Submits a process job; returns its id once it is durable.
        Fields: name, queue, priority, after, dependency (Slurm's
        "afterok:ID,afterany:ID.."), delay, timeout, retries, key, cpus,
        mem, stdin, output and error (paths with %j %A %a %x %u), rlimits,
        output_max, array... (docs/PROTOCOL.md)."""
        return self.call("submit", **self.job_fields(argv, **fields))["id"]

    def submit_array(self, argv, indices, **fields):
        """Submits a job array: one element per index of @indices (Slurm's
        syntax, "1-100", "0-98:2%10", "1,3,5-9"), each seeing its index as
        DD_ARRAY_INDEX. Returns the array's id; element k (0-based, in index
        order) has id + 1 + k."""
        return self.submit(argv, array=indices, **fields)

    def elements(self, array_id, state=None, limit=1000):
        """The elements of an array, in index order, page by page (an
        element not started yet shows its array's waiting state)."""
        return self.list(state=state, array=array_id, limit=limit)

    def submit_queued(self, queue, payload=b"", **fields):
        """Submits a job for the external workers of @queue."""
        if isinstance(payload, (bytes, bytearray)):
            fields["payload_b64"] = base64.b64encode(payload).decode()
        else:
            fields["payload"] = payload
        return self.call("submit", queue=queue, **fields)["id"]

    def submit_batch(self, jobs, env=None):
        """Submits the jobs (dicts of fields, given as they are) in one
        request; returns their ids. A batch is all or nothing, but for
        EAGAIN, whose Error.detail["submitted"] lists what went in."""
        req = {"jobs": list(jobs)}
        if env is not None:
            req["env"] = env
        return self.call("submit_batch", **req)["ids"]

    def get(self, jid):
        return self.call("get", id=jid)["job"]

    def wait(self, jid, timeout=None):
        """Waits until job @jid (or each of a list of ids) has ended;
        returns the job (or the jobs). Error ETIMEDOUT past @timeout."""
        extra = {} if timeout is None else {"timeout": timeout}
        if isinstance(jid, (list, tuple)):
            return self.call("wait", ids=list(jid), **extra)["jobs"]
        return self.call("wait", id=jid, **extra)["job"]

    def status(self, ids):
        """One word per job: pending, running, success or failed (as
        `dispatchctl status` prints them)."""
        tags = [self.send("get", id=j) for j in ids]
        return [_STATUS.get(self.answer(t)["job"]["state"], "failed") for t in tags]

    def cancel(self, jid):
        return self.call("cancel", id=jid)["job"]

    def signal(self, jid, sig):
        """Sends @sig (a name, "INT", or a number) to a running process job."""
        return self.call("signal", id=jid, signal=sig)

    def output(self, jid, stream="stdout", attempt=0):
        """What the job's process wrote to @stream ("stdout", "stderr") so
        far, of @attempt (0: the last), as bytes."""
        data, off = [], 0
        while True:
            r = self.call("output", id=jid, stream=stream, offset=off, attempt=attempt)
            chunk = base64.b64decode(r["data"])
            data.append(chunk)
            off = r["offset"]
            if r["eof"] or not chunk:
                return b"".join(data)

    def run(self, argv, **fields):
        """Runs a command as a job and waits for it: (job, stdout, stderr)."""
        jid = self.submit(argv, **fields)
        job = self.wait(jid)
        return job, self.output(jid), self.output(jid, "stderr")

    def list(self, state=None, queue=None, limit=1000, name=None, uid=None, array=None):
        """Every job (of a @state, @queue, @name, owner @uid; or the
        elements of @array), in id order, page by page."""
        after = 0
        while after is not None:
            req = {"after": after, "limit": limit}
            for k, v in (("state", state), ("queue", queue), ("name", name), ("uid", uid),
                         ("array", array)):
                if v is not None:
                    req[k] = v
            r = self.call("list", **req)
            yield from r["jobs"]
            after = r["next"]

    def watch(self, ids=None, queue=None):
        """The state changes of jobs (all, or of @ids and/or @queue) from
        now on (the watch is in place when this returns), as they come: an
        endless iterator of events; call unwatch (or close the client) to
        end them. An array's id among @ids brings its elements' changes
        too (events with array_id and array_index)."""
        req = {}
        if ids is not None:
            req["ids"] = list(ids)
        if queue is not None:
            req["queue"] = queue
        self.call("watch", **req)
        return self._events_iter()

    def _events_iter(self):
        while True:
            while self._events:
                yield self._events.pop(0)
            msg = self._read()
            if "event" in msg:
                yield msg["event"]
            else:
                self._held[msg.get("tag")] = msg

    def unwatch(self):
        return self.call("unwatch")

    # ---- external workers: leases ----

    def reserve(self, queue, ttr=60, timeout=None):
        """Leases the next job of @queue for @ttr seconds: the job ("data"
        holds its payload's bytes), or None if none came within
        @timeout."""
        extra = {} if timeout is None else {"timeout": timeout}
        job = self.call("reserve", queue=queue, ttr=ttr, **extra)["job"]
        if job is not None:
            # the payload's bytes, however the daemon sent them
            job["data"] = (base64.b64decode(job["payload_b64"]) if "payload_b64" in job
                           else job.get("payload", "").encode())
        return job

    def ack(self, jid, attempt):
        return self.call("ack", id=jid, attempt=attempt)

    def nack(self, jid, attempt, result=1):
        return self.call("nack", id=jid, attempt=attempt, result=result)

    def touch(self, jid, attempt, ttr=60):
        return self.call("touch", id=jid, attempt=attempt, ttr=ttr)

    # ---- the daemon ----

    def ping(self):
        return self.call("ping")

    def stats(self, **fields):
        return self.call("stats", **fields)
