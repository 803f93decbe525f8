"""{{name}}: consumes `{{name}}` and publishes each body, its ASCII letters
uppercased, to `{{name}}.upper`. Built into a component of the WIT world in
wit/ (raise Err(Failure_Retry()) or Err(Failure_Fatal()) to not finish)."""

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import Failure_Retry, Level, Message
from wasq_batch import HandleEach


class WitWorld(HandleEach, wit_world.WitWorld):
    def handle(self, message: Message) -> None:
        try:
            host.publish("{{name}}.upper", message.body.upper())
        except Err as e:
            host.log(Level.WARN, f"cannot publish to {{name}}.upper: {e.value}")
            raise Err(Failure_Retry())
