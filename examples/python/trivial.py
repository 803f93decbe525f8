"""trivial in Python: finishes every message and does nothing else. The
benchmark's measure of what one call into a Python plugin costs."""

import wit_world
from wit_world.imports.types import Message
from wasq_batch import HandleEach


class WitWorld(HandleEach, wit_world.WitWorld):
    def handle(self, message: Message) -> None:
        pass
