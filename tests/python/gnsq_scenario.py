"""Runs the gnsq scenario in a process of its own: gevent's hub does not mix
with the asyncio/tornado loops the other client tests use in-process.

Usage: python gnsq_scenario.py HOST:PORT ; prints the result as JSON.
"""

import json
import sys

import gevent
import gnsq


def main(address):
    producer = gnsq.Producer(address)
    producer.start()
    producer.publish("gnsq_t", b"hello")
    producer.multipublish("gnsq_t", [b"fail-once", b"bye"])

    received = []
    attempts = {}
    consumer = gnsq.Consumer("gnsq_t", "c", address, max_in_flight=5, max_backoff_duration=0.5)

    @consumer.on_message.connect
    def handler(consumer, message):
        attempts[message.body.decode()] = message.attempts
        if message.body == b"fail-once" and message.attempts == 1:
            raise RuntimeError("try again")
        received.append(message.body.decode())

    greenlet = gevent.spawn(consumer.start)
    with gevent.Timeout(20, False):
        while len(received) < 3:
            gevent.sleep(0.01)
    consumer.close()
    producer.close()
    producer.join(5)
    greenlet.join(5)
    print(json.dumps({"received": received, "attempts": attempts}))


if __name__ == "__main__":
    main(sys.argv[1])
