#!/usr/bin/env python3
"""A dispatchd client in Python's standard library only: the protocol is
newline-delimited JSON over a Unix socket (docs/PROTOCOL.md).

    python3 dispatchd_client.py            # runs a small demo
    DISPATCHD_SOCKET=/path/to/sock python3 dispatchd_client.py
"""
import base64
import json
import os
import socket
import stat
import struct


def default_socket():
    if os.environ.get("DISPATCHD_SOCKET"):
        return os.environ["DISPATCHD_SOCKET"]
    if os.geteuid() == 0:
        return "/run/dispatchd/dispatchd.sock"
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    try:
        st = os.stat(xdg) if xdg.startswith("/") else None
    except OSError:
        st = None
    if st and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
        return os.path.join(xdg, "dispatchd.sock")
    return "/tmp/dispatchd-%d/dispatchd.sock" % os.geteuid()


class DispatchdError(Exception):
    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code


class Dispatchd:
    def __init__(self, path=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = path or default_socket()
        self.sock.connect(path)
        # trust only a daemon of our own uid or root's: another user's
        # daemon on this path would run our jobs as that user
        _, uid, _ = struct.unpack("3i", self.sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        if uid not in (0, os.geteuid()):
            self.sock.close()
            raise PermissionError("%s: the daemon runs as uid %d, not as us or root" % (path, uid))
        self.file = self.sock.makefile("rb")
        self.tag = 0

    def call(self, op, **fields):
        """Sends one request and returns its result (raises on error)."""
        self.tag += 1
        tag = self.tag
        self.sock.sendall(json.dumps(dict(fields, op=op, tag=tag)).encode() + b"\n")
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("dispatchd closed the connection")
            msg = json.loads(line)
            if msg.get("tag") != tag or "event" in msg:
                continue  # an answer or event for something else
            if not msg["ok"]:
                raise DispatchdError(msg["error"]["code"], msg["error"]["message"])
            return msg["result"]

    def run(self, argv, **opts):
        """Runs a command as a job; returns (job, stdout bytes)."""
        jid = self.call("submit", argv=argv, **opts)["id"]
        job = self.call("wait", id=jid)["job"]
        out = base64.b64decode(self.call("output", id=jid)["data"])
        return job, out

    def work(self, queue, handler, ttr=60, timeout=5):
        """An external worker: takes jobs of @queue until none come."""
        while True:
            job = self.call("reserve", queue=queue, ttr=ttr, timeout=timeout)["job"]
            if job is None:
                return
            try:
                handler(job.get("payload"))
                self.call("ack", id=job["id"], attempt=job["attempt"])
            except Exception:  # noqa: BLE001 - any failure is a nack
                self.call("nack", id=job["id"], attempt=job["attempt"])


if __name__ == "__main__":
    d = Dispatchd()
    print("ping:", d.call("ping"))
    job, out = d.run(["uname", "-sr"])
    print("job %d %s, exit %s: %s" % (job["id"], job["state"], job["exit_code"], out.decode().strip()))
    ids = d.call("submit_batch", jobs=[{"queue": "demo", "payload": "item-%d" % i} for i in range(3)])["ids"]
    d.work("demo", lambda p: print("worker got", p), timeout=0.5)
    print("batch:", [j["state"] for j in d.call("wait", ids=ids)["jobs"]])
