"""window in Python: sums readings over tumbling windows of `[config]
window_ms` (default 10000) ms, by the messages' timestamps, and publishes
`START SUM` to `[config] output` (default `sums`) once a window is over. A
reading is a body holding a decimal integer; it adds to the state key
`sum/START`, where START is its window's start in ms. The first reading of
a window also sets `timer/START` and publishes `tick START` back to the
consumed topic, deferred until the window ends: handling that tick
publishes the sum and deletes both keys. A body that is neither
dead-letters; a state or publish error is logged and retried (the call's
state writes are then discarded, so nothing is added twice).

Manifest: state = true, publish = ["sums", and the consumed topic].
"""

import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, state
from wit_world.imports.types import Failure_Fatal, Failure_Retry, Level, Message
from wasq_batch import HandleEach

DECIMAL = re.compile(rb"[+-]?[0-9]+")
TICK = b"tick "


class WitWorld(HandleEach, wit_world.WitWorld):
    def handle(self, message: Message) -> None:
        # It bounds publish-deferred's delay: at most 2^31 - 1, as in
        # window.js, whose componentize-js passes larger u32s wrongly (the
        # broker refuses a delay above --max-req-timeout, 1 h by default).
        window_ms = config_number("window_ms", "10000", 1, 0x7FFF_FFFF)
        output = config("output", "sums")
        if message.body.startswith(TICK):
            tick(message.body[len(TICK) :], output)
        else:
            reading(message, window_ms)


def tick(start: bytes, output: str) -> None:
    """The window starting at `start` (its text from the tick) is over."""
    if parse_s64(start) is None:
        raise Err(Failure_Fatal("a tick without a window start"))
    sum_key = b"sum/" + start
    # get: None when the key has no value, else bytes.
    total = state_call(state.get, sum_key)
    if total is not None:
        publish_or_retry(output, start + b" " + total)
        state_call(state.delete, sum_key)  # True: it had a value
    state_call(state.delete, b"timer/" + start)


def reading(message: Message, window_ms: int) -> None:
    value = parse_s64(message.body)
    if value is None:
        raise Err(Failure_Fatal("body is neither a decimal integer nor a tick"))
    t = message.timestamp // 1_000_000  # timestamp: nanoseconds
    start = t - t % window_ms
    state_call(state.increment, f"sum/{start}".encode(), value)
    timer_key = f"timer/{start}".encode()
    if state_call(state.get, timer_key) is None:
        state_call(state.set, timer_key, b"1")
        delay = max(0, start + window_ms - t)
        publish_or_retry(message.topic, f"tick {start}".encode(), delay)


def state_call(operation, *args):
    """Runs a state operation. A refusal raises Err whose value is the
    state-error variant (StateError_Full(), StateError_Io("why"), …):
    logged, and the message retried."""
    try:
        return operation(*args)
    except Err as e:
        host.log(Level.WARN, f"window: state: {describe(e.value)}")
        raise Err(Failure_Retry())


def publish_or_retry(topic: str, body: bytes, delay_ms: int | None = None) -> None:
    """Publishes now, or after `delay_ms` when given; a refusal retries."""
    try:
        if delay_ms is None:
            host.publish(topic, body)
        else:
            host.publish_deferred(topic, body, delay_ms)
    except Err as e:
        host.log(Level.WARN, f"window: cannot publish to {topic}: {e.value}")
        raise Err(Failure_Retry())


def config(key: str, default: str) -> str:
    value = host.get_config(key)
    return default if value is None else value


def config_number(key: str, default: str, low: int, high: int) -> int:
    """`[config] key` (or `default`) as a decimal integer in low..=high;
    anything else is the manifest's mistake, not the message's: logged, and
    the message retried."""
    text = config(key, default)
    value = parse_s64(text.encode())
    if value is None or not low <= value <= high:
        host.log(Level.WARN, f'[config] {key} = "{text}": not an integer in {low}..={high}')
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
