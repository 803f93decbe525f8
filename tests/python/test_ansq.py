"""ansq (asyncio NSQ client) against wasqd: PUB/MPUB/DPUB, SUB, FIN, REQ
with attempts, TOUCH, and an error frame from the server."""

import asyncio
import time

import ansq

from conftest import eventually


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_round_trip_with_requeue_and_touch(wasqd):
    host, port = wasqd.tcp.rsplit(":", 1)

    async def scenario():
        writer = await ansq.open_connection(host, int(port))
        assert (await writer.pub("ansq_t", b"first")).is_ok
        assert (await writer.mpub("ansq_t", b"second", b"third")).is_ok
        assert (await writer.dpub("ansq_t", b"deferred", 300)).is_ok
        sent_deferred = time.monotonic()

        reader = await ansq.open_connection(host, int(port))
        assert (await reader.sub("ansq_t", "cc")).is_ok
        await reader.rdy(1)

        first = await reader.wait_for_message()
        assert first.body == b"first" and first.attempts == 1
        # REQ 0 puts it at the back of the queue, as nsqd does.
        await first.req(0)
        seen = {}
        while len(seen) < 4:
            message = await reader.wait_for_message()
            seen[message.body] = message
            if message.body == b"first":
                assert (message.id, message.attempts) == (first.id, 2)
                await message.touch()
            await message.fin()
        assert list(seen) == [b"second", b"third", b"first", b"deferred"]
        assert time.monotonic() - sent_deferred >= 0.28

        await reader.close()
        await writer.close()

    run(scenario())
    # The last FIN and the close reach the broker after the client returns.
    settled = lambda: wasqd.channel("ansq_t", "cc")["in_flight_count"] == 0
    assert eventually(settled), wasqd.channel("ansq_t", "cc")
    channel = wasqd.channel("ansq_t", "cc")
    assert channel["requeue_count"] == 1
    assert channel["depth"] == 0


def test_server_errors_reach_the_client(wasqd):
    host, port = wasqd.tcp.rsplit(":", 1)

    async def scenario():
        writer = await ansq.open_connection(host, int(port))
        response = await writer.dpub("ansq_t", b"x", 3_600_001)
        assert response.is_error
        assert "E_INVALID" in response.text
        assert "DPUB timeout 3600001 out of range 0-3600000" in response.text
        await writer.close()

    run(scenario())
