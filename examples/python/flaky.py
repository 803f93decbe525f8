"""flaky in Python: consumes `jobs`. A body containing "fail" asks to be
retried (so after the manifest's max_attempts it is dead-lettered); any
other body is published to `jobs.done.py`."""

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import Failure_Retry, Level, Message
from wasq_batch import HandleEach


class WitWorld(HandleEach, wit_world.WitWorld):
    def handle(self, message: Message) -> None:
        if b"fail" in message.body:
            job = message.id.decode("ascii", "replace")
            host.log(Level.INFO, f"job {job} failed (attempt {message.attempts})")
            raise Err(Failure_Retry())
        try:
            host.publish("jobs.done.py", message.body)
        except Err:
            raise Err(Failure_Retry())
