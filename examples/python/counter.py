"""counter in Python: counts the messages of each body in the plugin's
state (the key `count/BODY`), and every `[config] every` (default 10) of
one body publishes `BODY COUNT` to `[config] output` (default `counts`).
The count commits with the message's FIN, so a message is counted once
however often it is delivered. A state or publish error is logged and
retried.

Manifest: state = true, publish = ["counts"] (or the output topic).
"""

import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, state
from wit_world.imports.types import Failure_Retry, Level, Message
from wasq_batch import HandleEach

DECIMAL = re.compile(rb"[+-]?[0-9]+")


class WitWorld(HandleEach, wit_world.WitWorld):
    def handle(self, message: Message) -> None:
        every = config_number("every", "10", 1)
        output = config("output", "counts")
        try:
            count = state.increment(b"count/" + message.body, 1)
        except Err as e:
            # e.value is the state-error variant: StateError_Full(),
            # StateError_Io("why"), …
            host.log(Level.WARN, f"counter: state: {describe(e.value)}")
            raise Err(Failure_Retry())
        if count % every != 0:
            return
        try:
            host.publish(output, message.body + f" {count}".encode())
        except Err as e:
            host.log(Level.WARN, f"counter: cannot publish to {output}: {e.value}")
            raise Err(Failure_Retry())


def config(key: str, default: str) -> str:
    value = host.get_config(key)
    return default if value is None else value


def config_number(key: str, default: str, low: int) -> int:
    """`[config] key` (or `default`) as a decimal integer of at least `low`;
    anything else is the manifest's mistake, not the message's: logged, and
    the message retried."""
    text = config(key, default)
    value = parse_s64(text.encode())
    if value is None or value < low:
        host.log(Level.WARN, f'[config] {key} = "{text}": not an integer >= {low}')
        raise Err(Failure_Retry())
    return value


def parse_s64(text: bytes) -> int | None:
    """A decimal s64 (b"42", b"-7", b"+3"), or None."""
    if DECIMAL.fullmatch(text) is None:
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def describe(error) -> str:
    """A state error by its WIT name: StateError_NotANumber() is
    "not-a-number", StateError_Io("disk full") "io: disk full"."""
    name = re.sub(r"(?<!^)(?=[A-Z])", "-", type(error).__name__.removeprefix("StateError_")).lower()
    return name if getattr(error, "value", None) is None else f"{name}: {error.value}"
