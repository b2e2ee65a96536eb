"""A local broker (tansu, memory only) of a probe's own, on a port of its choosing: started,
stopped, and a topic made on it. For the probes that show the broker's behaviour without a stack."""

from __future__ import annotations

import subprocess
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from payctl.stack.binaries import Binaries, tansu_broker_args


def start(bootstrap: str, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """The broker listening on `bootstrap`; its log to `log_path` (None: discarded)."""
    command = [Binaries.discover().require("tansu"), *tansu_broker_args(bootstrap)]
    if log_path is None:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def stop(broker: subprocess.Popen[bytes]) -> None:
    broker.send_signal(2)
    broker.wait(timeout=10)


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()
