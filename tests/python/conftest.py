"""Starts a real wasqd on OS-chosen loopback ports for each test.

The binary comes from $WASQD_BIN (the test script builds it). wasqd runs
with --exit-on-stdin-eof, so it stops with the test process even on a crash.
"""

import json
import os
import re
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
        self.proc = subprocess.Popen(
            [binary, "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--exit-on-stdin-eof",
             "--lookupd-embedded-tcp-address", "127.0.0.1:0", "--lookupd-embedded-http-address", "127.0.0.1:0", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.workdir.name,
        )
        self.log = []
        found = {}
        ready = threading.Event()

        def read_log():
            for line in self.proc.stderr:
                self.log.append(line)
                lookupd = re.search(r"LOOKUPD: (TCP|HTTP) listening on (\S+)", line)
                if lookupd:
                    found["LOOKUPD_" + lookupd.group(1)] = lookupd.group(2)
                match = re.search(r"(TCP|HTTP): listening on (\S+)", line)
                if match:
                    found[match.group(1)] = match.group(2)
                    if "TCP" in found and "HTTP" in found:
                        ready.set()

        threading.Thread(target=read_log, daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError("wasqd did not start: " + "".join(self.log))
        self.tcp = found["TCP"]
        self.http = found["HTTP"]
        # The embedded lookupd (None with --no-embedded-lookupd).
        self.lookupd_tcp = found.get("LOOKUPD_TCP")
        self.lookupd_http = found.get("LOOKUPD_HTTP")

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
