"""A small blocking HTTP client over wasi:http's outgoing handler, for
Python plugins (componentize-py has no ssl module, and its sockets are
refused by the broker: wasi:http is the way out).

    response = request("POST", "https://example.com/hook", [("content-type", "text/plain")], b"hi")
    response.status, response.header("retry-after"), response.body

Blocking is right here: the broker suspends the instance while it waits
and runs other instances meanwhile.
"""

from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler
from wit_world.imports import wasi_http_types as types
from wit_world.imports.streams import StreamError_Closed

# The most bytes one blocking write may take (wasi:io's guaranteed minimum).
WRITE_CHUNK = 4096
READ_CHUNK = 64 * 1024

METHODS = {
    "GET": types.Method_Get,
    "HEAD": types.Method_Head,
    "POST": types.Method_Post,
    "PUT": types.Method_Put,
    "DELETE": types.Method_Delete,
    "PATCH": types.Method_Patch,
    "OPTIONS": types.Method_Options,
}


class HttpError(Exception):
    """No response: `code` is wasi:http's error-code; `refused` is true when
    the broker refused the request (allowlist, invalid URL, too large), so
    trying again will not help."""

    def __init__(self, code):
        super().__init__(type(code).__name__.removeprefix("ErrorCode_"))
        self.code = code
        self.refused = isinstance(
            code,
            (
                types.ErrorCode_HttpRequestDenied,
                types.ErrorCode_HttpRequestUriInvalid,
                types.ErrorCode_HttpResponseBodySize,
            ),
        )


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def request(method, url, headers=(), body=b""):
    parts = urlsplit(url)
    outgoing = types.OutgoingRequest(
        types.Fields.from_list([(name, value.encode()) for name, value in headers])
    )
    outgoing.set_method(METHODS[method.upper()]())
    outgoing.set_scheme(types.Scheme_Https() if parts.scheme == "https" else types.Scheme_Http())
    outgoing.set_authority(parts.netloc)
    outgoing.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    outgoing_body = outgoing.body()
    try:
        future = outgoing_handler.handle(outgoing, None)
    except Err as error:
        raise HttpError(error.value) from None
    stream = outgoing_body.write()
    for start in range(0, len(body), WRITE_CHUNK):
        stream.blocking_write_and_flush(body[start : start + WRITE_CHUNK])
    stream.__exit__(None, None, None)
    types.OutgoingBody.finish(outgoing_body, None)
    future.subscribe().block()
    answer = future.get()
    if isinstance(answer, Ok):
        answer = answer.value
    if isinstance(answer, Err):
        raise HttpError(answer.value)
    incoming = answer.value if isinstance(answer, Ok) else answer
    status = incoming.status()
    received = [(name, value.decode("latin-1")) for name, value in incoming.headers().entries()]
    incoming_body = incoming.consume()
    reading = incoming_body.stream()
    chunks = []
    while True:
        try:
            chunks.append(reading.blocking_read(READ_CHUNK))
        except Err as error:
            if isinstance(error.value, StreamError_Closed):
                break
            raise HttpError(types.ErrorCode_ConnectionTerminated()) from None
    reading.__exit__(None, None, None)
    return Response(status, received, b"".join(chunks))
