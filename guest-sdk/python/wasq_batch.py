"""handle-batch for Python components of a `batch-consumer` world (WIT
1.3.0): many messages per call, each handed to the plugin's own `handle`
and its outcome reported with `batch.done` before the next, so the plugin
still sees one message at a time (guest-sdk/ABI.md, "Component batches").
In a plugin:

    from wasq_batch import HandleEach

    class WitWorld(HandleEach, wit_world.WitWorld):
        def handle(self, message: Message) -> None: ...

Built with `componentize-py --wit-path guest-sdk/wit --world
batch-consumer componentize --python-path guest-sdk/python ...`.
"""

from componentize_py_types import Err, Ok
from wit_world.imports import batch

OK = Ok(None)


class HandleEach:
    """`handle_batch` as a loop over `self.handle`. An `Err(failure)` it
    raises is that message's outcome; any other exception is a bug in the
    handler and traps, as it would in `handle`."""

    def handle_batch(self, messages) -> None:
        for message in messages:
            try:
                self.handle(message)
            except Err as failure:
                batch.done(failure)
                continue
            batch.done(OK)
