"""gnsq (gevent NSQ client) against wasqd: Producer publishes and
multi-publishes, Consumer receives and finishes, and a handler error
requeues the message, which comes back with attempts counted."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_producer_and_consumer(wasqd):
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "gnsq_scenario.py"), wasqd.tcp],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(outcome["received"]) == ["bye", "fail-once", "hello"], result.stderr
    assert outcome["attempts"]["fail-once"] == 2
    channel = wasqd.channel("gnsq_t", "c")
    assert channel["requeue_count"] == 1
