"""webhook in Python (world consumer-http): POSTs each body to `[config]
url` over wasi:http, as the core-module webhook does over ABI v1. 2xx
finishes; 429 and 5xx retry (after Retry-After seconds when given); a
failure to connect or a timeout retries; any other status, or a request
the broker refuses, dead-letters.

Manifest: as examples/webhook's (allowed_outbound_hosts,
required_config = ["url"], [config] url, optional authorization and
content_type).
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.wasq_plugin_types import (
    Failure_Fatal,
    Failure_Retry,
    Failure_RetryAfter,
    Level,
    Message,
)

import wasi_http_client as http


class WitWorld(wit_world.WitWorld):
    def handle(self, message: Message) -> None:
        url = host.get_config("url")
        if url is None:
            host.log(Level.WARN, "webhook: [config] url is not set")
            raise Err(Failure_Retry())
        headers = [("content-type", host.get_config("content_type") or "application/octet-stream")]
        authorization = host.get_config("authorization")
        if authorization is not None:
            headers.append(("authorization", authorization))
        try:
            response = http.request("POST", url, headers, message.body)
        except http.HttpError as error:
            host.log(Level.WARN, f"webhook: POST {url}: {error}")
            raise Err(Failure_Fatal(str(error)) if error.refused else Failure_Retry())
        if 200 <= response.status < 300:
            return
        host.log(Level.WARN, f"webhook: POST {url}: answered {response.status}")
        if response.status == 429 or response.status >= 500:
            after = response.header("retry-after")
            if after is not None and after.strip().isdigit():
                raise Err(Failure_RetryAfter(int(after.strip()) * 1000))
            raise Err(Failure_Retry())
        raise Err(Failure_Fatal(f"answered {response.status}"))
