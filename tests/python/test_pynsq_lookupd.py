"""pynsq's Reader discovering producers through lookupd: messages published
to three wasqd nodes, found via the lookupd embedded in a fourth."""

import json
import urllib.request

import nsq

from conftest import Wasqd, eventually
from test_pynsq import fresh_loop, run_loop


def lookup_ports(lookupd_http, topic):
    try:
        with urllib.request.urlopen(f"http://{lookupd_http}/lookup?topic={topic}") as response:
            return sorted(p["tcp_port"] for p in json.load(response)["producers"])
    except urllib.error.HTTPError:
        return []


def test_reader_finds_three_nodes_through_lookupd(wasqd):
    hub = wasqd
    nodes = [Wasqd("--no-embedded-lookupd", "--lookupd-tcp-address", hub.lookupd_tcp) for _ in range(3)]
    try:
        for i, node in enumerate(nodes):
            for j in range(4):
                request = urllib.request.Request(f"http://{node.http}/pub?topic=py_spread", data=f"n{i}-{j}".encode())
                assert urllib.request.urlopen(request).read() == b"OK"
        ports = sorted(int(n.tcp.rsplit(":", 1)[1]) for n in nodes)
        assert eventually(lambda: lookup_ports(hub.lookupd_http, "py_spread") == ports)

        fresh_loop()
        seen = set()

        def handler(message):
            seen.add(message.body.decode())
            return True

        reader = nsq.Reader(
            message_handler=handler,
            lookupd_http_addresses=[f"http://{hub.lookupd_http}"],
            lookupd_poll_interval=1,
            topic="py_spread",
            channel="all",
            max_in_flight=12,
        )
        run_loop(lambda: len(seen) == 12)
        assert seen == {f"n{i}-{j}" for i in range(3) for j in range(4)}
        reader.close()
    finally:
        for node in nodes:
            node.stop()
