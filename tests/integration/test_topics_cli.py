"""`streamapp topics --create` against the embedded broker: the deploy step that creates topics."""

from __future__ import annotations

import os
import subprocess
import sys

from aiokafka.admin import AIOKafkaAdminClient

from streamapp.kafka_security import bootstrap
from tests.integration.stack import Services


def run_cli(services: Services, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamapp", "topics", *args],
        env={
            **os.environ,
            "STREAMAPP_BROKER_URL": services.broker_url,
            "STREAMAPP_DATABASE_URL": services.database_url,
            "STREAMAPP_LOG_LEVEL": "WARNING",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_create_makes_every_declared_topic_and_checks_counts(services: Services) -> None:
    listed = run_cli(services)
    assert listed.returncode == 0, listed.stderr
    wanted = [line.split("\t")[0] for line in listed.stdout.splitlines() if line.endswith("\tpipeline")]
    created = run_cli(services, "--create")
    assert created.returncode == 0, created.stdout + created.stderr
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(services.broker_url))
    await admin.start()
    try:
        present = set(await admin.list_topics())
        assert set(wanted) <= present
        for meta in await admin.describe_topics(wanted):
            assert len(meta["partitions"]) == 4, meta
    finally:
        await admin.close()
    # Run again: nothing to do, still fine (every init container runs it).
    assert run_cli(services, "--create").returncode == 0
    # Another partition count than the existing topics': refused, with the reason.
    other = run_cli(services, "--create", STREAMAPP_TOPIC_PARTITIONS="6")
    assert other.returncode == 1
    assert "has 4 partitions, STREAMAPP_TOPIC_PARTITIONS is 6" in other.stdout
