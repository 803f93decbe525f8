"""pynsq with TLS, snappy and deflate (alone and inside TLS), a client
certificate under --tls-client-auth-policy=require-verify, and AUTH
against a small auth server run by the test (grant, refuse, expire).

Certificates are made fresh for each test by `wasq-test-certs` (built with
the workspace), so no private key lives in the repository."""

import json
import logging
import os
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nsq
import pytest
import tornado.ioloop

from conftest import ROOT, Wasqd
from test_pynsq import fresh_loop, publish_all, run_loop


@pytest.fixture
def certs():
    binary = os.environ.get(
        "WASQ_TEST_CERTS_BIN", os.path.join(ROOT, "target", "debug", "wasq-test-certs")
    )
    with tempfile.TemporaryDirectory(prefix="wasq-certs-") as directory:
        subprocess.run([binary, directory], check=True)
        yield {name: os.path.join(directory, name) for name in
               ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def tls_flags(certs):
    return ["--tls-cert", certs["server.pem"], "--tls-key", certs["server.key"],
            "--tls-root-ca-file", certs["ca.pem"]]


def tls_options(certs, with_certificate=False):
    options = {"ca_certs": certs["ca.pem"], "cert_reqs": ssl.CERT_REQUIRED}
    if with_certificate:
        options.update(certfile=certs["client.pem"], keyfile=certs["client.key"])
    return options


def round_trip(wasqd, topic, count=20, size=300, **connection):
    """Publishes with a pynsq Writer and consumes with a pynsq Reader, both
    with the same connection options; returns the channel's client stats."""
    fresh_loop()
    bodies = [(f"{topic} {i} ".encode() + b"x" * size) for i in range(count)]
    publish_all(wasqd, topic, bodies, **connection)

    seen = []
    reader = nsq.Reader(
        message_handler=lambda message: seen.append(message.body) or True,
        nsqd_tcp_addresses=[wasqd.tcp], topic=topic, channel="c", max_in_flight=10,
        **connection,
    )
    run_loop(lambda: len(seen) == count)
    assert sorted(seen) == sorted(bodies)
    clients = wasqd.channel(topic, "c")["clients"]
    reader.close()
    return clients[0]


@pytest.fixture
def tls_wasqd(certs):
    server = Wasqd(*tls_flags(certs))
    yield server
    server.stop()


def test_tls(tls_wasqd, certs):
    client = round_trip(tls_wasqd, "py_tls", tls_v1=True, tls_options=tls_options(certs))
    assert client["tls"] is True
    assert client["tls_version"] == "TLS1.2"  # pynsq asks for TLS 1.2


def test_snappy(wasqd):
    client = round_trip(wasqd, "py_snappy", snappy=True, size=100_000, count=5)
    assert client["snappy"] is True


def test_deflate(wasqd):
    client = round_trip(wasqd, "py_deflate", deflate=True, deflate_level=6, size=100_000, count=5)
    assert client["deflate"] is True


def test_tls_with_snappy(tls_wasqd, certs):
    client = round_trip(tls_wasqd, "py_tls_snappy", tls_v1=True, tls_options=tls_options(certs), snappy=True)
    assert (client["tls"], client["snappy"]) == (True, True)


def test_tls_with_deflate(tls_wasqd, certs):
    client = round_trip(tls_wasqd, "py_tls_deflate", tls_v1=True, tls_options=tls_options(certs), deflate=True)
    assert (client["tls"], client["deflate"]) == (True, True)


def test_client_certificate_with_require_verify(certs):
    # tcp-https keeps plain HTTP open for the test's /stats reads.
    server = Wasqd(*tls_flags(certs), "--tls-client-auth-policy", "require-verify",
                   "--tls-required=tcp-https")
    try:
        client = round_trip(server, "py_mutual", tls_v1=True, tls_options=tls_options(certs, True))
        assert client["tls"] is True
    finally:
        server.stop()


class AuthServer:
    """nsqd's auth protocol: GET /auth?secret=..., answered by `answer(query)`."""

    def __init__(self, answer):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query,
                                                    keep_blank_values=True))
                outer.requests.append(query)
                status, body = answer(query)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def grant(ttl=3600):
    return 200, {"ttl": ttl, "identity": "py", "identity_url": "https://example.test/py",
                 "authorizations": [{"topic": ".*", "channels": [".*"],
                                     "permissions": ["subscribe", "publish"]}]}


def test_auth_grant(certs):
    auth = AuthServer(lambda q: grant() if q.get("secret") == "good" else (403, {}))
    server = Wasqd(*tls_flags(certs), "--auth-http-address", auth.address)
    try:
        client = round_trip(server, "py_auth", auth_secret="good",
                            tls_v1=True, tls_options=tls_options(certs))
        assert client["authed"] is True
        assert client["auth_identity"] == "py"
        assert {r["secret"] for r in auth.requests} == {"good"}
        assert all(r["tls"] == "true" for r in auth.requests)
    finally:
        server.stop()
        auth.close()


def auth_error(server, secret):
    """Connects a pynsq Writer with `secret`; returns the error frame the
    connection got (pynsq reports it through its log)."""
    fresh_loop()
    errors = []

    class Collect(logging.Handler):
        def emit(self, record):
            text = record.getMessage()
            if "E_" in text:
                errors.append(text)

    handler = Collect()
    logger = logging.getLogger("nsq.client")
    logger.addHandler(handler)
    try:
        writer = nsq.Writer([server.tcp], auth_secret=secret, reconnect_interval=60)
        run_loop(lambda: errors)
        for conn in list(writer.conns.values()):
            conn.close()
    finally:
        logger.removeHandler(handler)
    return errors[0]


def test_auth_refused_and_unauthorized():
    auth = AuthServer(lambda q: {
        "good": grant(),
        "nothing": (200, {"ttl": 60, "authorizations": []}),
    }.get(q.get("secret"), (403, {})))
    server = Wasqd("--auth-http-address", auth.address)
    try:
        assert "E_AUTH_FAILED" in auth_error(server, "wrong")
        assert "E_UNAUTHORIZED" in auth_error(server, "nothing")
    finally:
        server.stop()
        auth.close()


def test_auth_expiry_asks_again():
    auth = AuthServer(lambda q: grant(ttl=1))
    server = Wasqd("--auth-http-address", auth.address)
    try:
        fresh_loop()
        acked = []
        writer = nsq.Writer([server.tcp], auth_secret="good")
        started = time.time()

        def send():
            if writer.conns:
                writer.pub("py_expire", b"x", callback=lambda conn, data: acked.append(data))

        sender = tornado.ioloop.PeriodicCallback(send, 200)
        sender.start()
        # Publishing for longer than the TTL makes wasqd ask again.
        run_loop(lambda: len(auth.requests) >= 2 and time.time() - started > 1.5)
        sender.stop()
        assert acked and all(a == b"OK" for a in acked), acked
    finally:
        server.stop()
        auth.close()
