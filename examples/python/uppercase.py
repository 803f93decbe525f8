"""uppercase in Python: publishes each body of `words`, ASCII letters
uppercased (every other byte unchanged), to `words.upper.py`."""

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import Failure_Retry, Level, Message
from wasq_batch import HandleEach


class WitWorld(HandleEach, wit_world.WitWorld):
    def handle(self, message: Message) -> None:
        try:
            host.publish("words.upper.py", message.body.upper())
        except Err as e:
            host.log(Level.WARN, f"cannot publish to words.upper.py: {e.value}")
            raise Err(Failure_Retry())
