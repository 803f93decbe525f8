"""pynsq (the official Python client) against wasqd: publish, consume,
FIN, REQ with attempts, and two readers sharing a channel."""

import asyncio

import nsq
import tornado.ioloop

from conftest import eventually


def run_loop(until, timeout=20):
    """Runs the IOLoop until `until()` holds (checked every 10 ms) or fails on timeout."""
    loop = tornado.ioloop.IOLoop.current()
    state = {"timed_out": False}

    def check():
        if until():
            loop.stop()

    def give_up():
        state["timed_out"] = True
        loop.stop()

    poller = tornado.ioloop.PeriodicCallback(check, 10)
    poller.start()
    handle = loop.call_later(timeout, give_up)
    loop.start()
    poller.stop()
    loop.remove_timeout(handle)
    assert not state["timed_out"], "timed out"


def fresh_loop():
    asyncio.set_event_loop(asyncio.new_event_loop())


def publish_all(wasqd, topic, bodies, **connection):
    """Publishes every body with a pynsq Writer (given connection options
    such as tls_v1, snappy, deflate or auth_secret) and waits for each OK."""
    acked = []
    writer = nsq.Writer([wasqd.tcp], **connection)

    def send():
        if not writer.conns:
            return
        send_cb.stop()
        for body in bodies:
            writer.pub(topic, body, callback=lambda conn, data: acked.append(data))

    send_cb = tornado.ioloop.PeriodicCallback(send, 10)
    send_cb.start()
    run_loop(lambda: len(acked) == len(bodies))
    assert all(a == b"OK" for a in acked), acked
    for conn in list(writer.conns.values()):
        conn.close()
    return acked


def test_publish_consume_and_requeue(wasqd):
    fresh_loop()
    publish_all(wasqd, "py_round", [b"one", b"two", b"retry-me"])

    seen = []
    attempts = {}

    def handler(message):
        body = message.body
        attempts[body] = message.attempts
        if body == b"retry-me" and message.attempts == 1:
            message.enable_async()
            message.requeue(delay=0, backoff=False)
            return None
        seen.append(body)
        return True

    reader = nsq.Reader(
        message_handler=handler,
        nsqd_tcp_addresses=[wasqd.tcp],
        topic="py_round",
        channel="c",
        max_in_flight=10,
        lookupd_poll_interval=1,
    )
    run_loop(lambda: len(seen) == 3)
    assert sorted(seen) == [b"one", b"retry-me", b"two"]
    assert attempts[b"retry-me"] == 2
    assert attempts[b"one"] == 1

    def settled():
        c = wasqd.channel("py_round", "c")
        return c and c["in_flight_count"] == 0 and c["depth"] == 0 and c["requeue_count"] == 1

    run_loop(settled)
    reader.close()


def test_two_readers_share_a_channel(wasqd):
    fresh_loop()
    bodies = [f"m{i}".encode() for i in range(60)]
    seen = {"a": [], "b": []}

    def handler_for(name):
        def handler(message):
            seen[name].append(message.body)
            return True

        return handler

    readers = [
        nsq.Reader(
            message_handler=handler_for(name),
            nsqd_tcp_addresses=[wasqd.tcp],
            topic="py_share",
            channel="shared",
            max_in_flight=5,
        )
        for name in ("a", "b")
    ]

    def both_connected():
        c = wasqd.channel("py_share", "shared")
        return c is not None and c["client_count"] == 2

    run_loop(both_connected)
    publish_all(wasqd, "py_share", bodies)
    run_loop(lambda: len(seen["a"]) + len(seen["b"]) >= len(bodies))
    everything = seen["a"] + seen["b"]
    assert sorted(everything) == sorted(bodies), "each message exactly once across the channel"
    assert seen["a"] and seen["b"], "both readers got messages"
    for reader in readers:
        reader.close()
    assert eventually(lambda: wasqd.channel("py_share", "shared")["client_count"] == 0)
