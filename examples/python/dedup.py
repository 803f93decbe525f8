"""dedup in Python: passes on each JSON object body `{"id": …, …}` to
`[config] output` (default `unique`) unless a message with the same id went
through less than `[config] ttl_ms` (default 60000) ms before, by the
messages' timestamps. The id is a string or a number (its text as written:
1.50 stays "1.50"); the plugin's state keeps `seen/ID` = the time in ms it
went through. A body without an id dead-letters; a state or publish error
is logged and retried.

Manifest: state = true, publish = ["unique"] (or the output topic).
"""

import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, state
from wit_world.imports.types import Failure_Fatal, Failure_Retry, Level, Message
from wasq_batch import HandleEach

DECIMAL = re.compile(rb"[+-]?[0-9]+")


class WitWorld(HandleEach, wit_world.WitWorld):
    def handle(self, message: Message) -> None:
        ttl_ms = config_number("ttl_ms", "60000", -(2**63))  # < 1: no dedup
        output = config("output", "unique")
        key = b"seen/" + id_of(message.body)
        now_ms = message.timestamp // 1_000_000  # timestamp: nanoseconds
        try:
            # get: None when the key has no value, else bytes.
            seen = state.get(key)
            seen_ms = None if seen is None else parse_s64(seen)
            if seen_ms is not None and now_ms - seen_ms < ttl_ms:
                return
            state.set(key, str(now_ms).encode())
        except Err as e:
            # e.value is the state-error variant: StateError_Full(),
            # StateError_Io("why"), …
            host.log(Level.WARN, f"dedup: state: {describe(e.value)}")
            raise Err(Failure_Retry())
        try:
            host.publish(output, message.body)
        except Err as e:
            host.log(Level.WARN, f"dedup: cannot publish to {output}: {e.value}")
            raise Err(Failure_Retry())


def id_of(body: bytes) -> bytes:
    """The body's top-level "id", a string or a number's text as written
    (parse_int and parse_float keep it), in UTF-8; a body that is not a
    JSON object with one dead-letters."""
    try:
        document = json.loads(
            body.decode("utf-8"), parse_int=str, parse_float=str, parse_constant=not_json
        )
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise Err(Failure_Fatal(f"body is not JSON: {e}"))
    value = document.get("id") if isinstance(document, dict) else None
    if isinstance(value, str):
        try:
            return value.encode()
        except UnicodeEncodeError:  # a lone surrogate ("\ud800")
            pass
    raise Err(Failure_Fatal('body is not a JSON object with an "id" (a string or a number)'))


def not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


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
