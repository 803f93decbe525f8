"""Starts a real wasqd on OS-chosen loopback ports for each test.

The binary comes from $WASQD_BIN (the test script builds it). wasqd runs
with --exit-on-stdin-eof, so it stops with the test process even on a crash,
and with --ready-file, where it writes its bound addresses once it serves
(log lines are for people and may be reworded).
"""

import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Wasqd:
    def __init__(self, *args):
        binary = os.environ.get("WASQD_BIN", os.path.join(ROOT, "target", "debug", "wasqd"))
        # A scratch working directory: no plugins, nothing written in the repository.
        self.workdir = tempfile.TemporaryDirectory(prefix="wasq-py-")
        ready_file = os.path.join(self.workdir.name, ".ready.json")
        self.proc = subprocess.Popen(
            [binary, "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--https-address", "127.0.0.1:0",
             "--exit-on-stdin-eof",
             "--ready-file", ready_file,
             "--lookupd-embedded-tcp-address", "127.0.0.1:0", "--lookupd-embedded-http-address", "127.0.0.1:0", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.workdir.name,
        )
        self.log = []

        def read_log():
            for line in self.proc.stderr:
                self.log.append(line)

        threading.Thread(target=read_log, daemon=True).start()
        deadline = time.time() + 60
        while not os.path.exists(ready_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("wasqd did not start: " + "".join(self.log))
            time.sleep(0.01)
        with open(ready_file) as f:
            listening = json.load(f)
        self.tcp = listening["tcp"]
        self.http = listening["http"]
        # The embedded lookupd (None with --no-embedded-lookupd).
        self.lookupd_tcp = listening.get("lookupd_tcp")
        # Only with TLS configured.
        self.https = listening.get("https")
        self.lookupd_http = listening.get("lookupd_http")

    def stats(self):
        with urllib.request.urlopen(f"http://{self.http}/stats?format=json") as response:
            return json.load(response)

    def channel(self, topic, channel):
        for t in self.stats()["topics"] or []:
            if t["topic_name"] == topic:
                for c in t["channels"]:
                    if c["channel_name"] == channel:
                        return c
        return None

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.workdir.cleanup()


@pytest.fixture
def wasqd():
    server = Wasqd()
    yield server
    server.stop()


def eventually(check, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False
