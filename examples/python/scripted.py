"""scripted in Python (world consumer-with-init): does what each body says,
so the host's tests hold Python components to every part of the contract.
Not an example to copy; see uppercase.py and flaky.py.

Bodies: ok, retry, retry-after MS, fatal REASON, throw, publish TOPIC [BODY],
print TEXT. A publish's result goes to TOPIC.results (the consumed topic's).
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import (
    Failure_Fatal,
    Failure_Retry,
    Failure_RetryAfter,
    Level,
    Message,
    PublishError,
)
from wasq_batch import HandleEach

RESULT_NAMES = {
    PublishError.FORBIDDEN: "forbidden",
    PublishError.INVALID_TOPIC: "invalid-topic",
    PublishError.INVALID_BODY: "invalid-body",
    PublishError.INVALID_DELAY: "invalid-delay",
    PublishError.UNAVAILABLE: "unavailable",
}


class WitWorld(HandleEach, wit_world.WitWorld):
    def init(self) -> None:
        host.log(Level.INFO, "init ran in python")

    def handle(self, message: Message) -> None:
        command, _, rest = message.body.decode().partition(" ")
        if command == "ok":
            return
        if command == "retry":
            raise Err(Failure_Retry())
        if command == "retry-after":
            raise Err(Failure_RetryAfter(int(rest)))
        if command == "fatal":
            raise Err(Failure_Fatal(rest))
        if command == "throw":
            raise ValueError("not a failure")
        if command == "publish":
            topic, _, body = rest.partition(" ")
            try:
                host.publish(topic, body.encode())
                result = "ok"
            except Err as e:
                result = RESULT_NAMES[e.value]
            host.publish(f"{message.topic}.results", result.encode())
            return
        if command == "print":
            print(rest)
            return
        raise Err(Failure_Fatal(f"unknown command {command}"))
