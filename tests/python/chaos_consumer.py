"""A pynsq Reader that finds its nodes through lookupds and prints each
message body on a line of its own, for the cluster chaos test
(cli/tests/cluster_chaos.rs), which starts it and reads what it prints.

    chaos_consumer.py TOPIC CHANNEL LOOKUPD_HTTP [LOOKUPD_HTTP ...]

It runs until killed. Lookupds are polled every second, so nodes that
come back after a restart are found again quickly.
"""

import sys

import nsq
import tornado.ioloop


def main():
    topic, channel, *lookupds = sys.argv[1:]

    def handler(message):
        sys.stdout.write(message.body.decode() + "\n")
        sys.stdout.flush()
        return True

    nsq.Reader(
        message_handler=handler,
        lookupd_http_addresses=[f"http://{address}" for address in lookupds],
        lookupd_poll_interval=1,
        topic=topic,
        channel=channel,
        max_in_flight=100,
    )
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
