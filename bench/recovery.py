"""Recovery benchmark: how long a worker takes to get its table back, memory store vs the durable store.

    python -m bench.recovery [--keys 1000000]

Starts its own embedded stack, writes `--keys` license states straight into the
`license-state` changelog (aiokafka, realistic values), then times worker starts
from process start to Faust's "Recovery complete":
  (a) baseline: the memory store, which replays the whole changelog at every start;
  (b) the durable store (RocksDB) on an empty data directory: replays it once, into RocksDB;
  (c) the durable store restarted: the local store is current, nothing to read;
  (d) the durable store after a restart of the (memory-only) broker: the changelog is
      empty, the local store ahead of it: the worker keeps its state and writes it back.
Prints a markdown table and writes it to bench/results/recovery-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.stack import Children, free_port, python, start_services, wait_http
from streamapp.app import key_partitioner
from streamapp.models.licenses import CustomerRecord
from streamapp.rules.licenses import LicenseState
from streamapp.tables.licenses import dump_state

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
APP_ID = "recoverybench"
PARTITIONS = 4
CHANGELOG = f"{APP_ID}-license-state-changelog"
RECOVERED = "Recovery complete"


@dataclass
class Row:
    scenario: str
    seconds: float
    keys: int
    rss_mb: float
    notes: str = ""


def state_value(i: int) -> bytes:
    """A license state like the agent writes (~400 bytes of JSON)."""
    customer = str(uuid.UUID(int=i))
    state = LicenseState(
        customer=CustomerRecord(
            id=customer,
            name=f"customer-{i}.example.com",
            account_manager="Ada Lovelace",
            sales_engineer_id=str(uuid.UUID(int=i + 1)),
            signed_tos=True,
            skus={"SKU1": True, "SKU2": i % 2 == 0, "SKU3": False},
        ),
        licensed=frozenset({"SKU1"} | ({"SKU2"} if i % 2 == 0 else set())),
        effective_at=datetime(2026, 1, 1, tzinfo=UTC),
        last_event_id=uuid.UUID(int=i + 2),
        recent_event_ids=(str(uuid.UUID(int=i + 2)),),
    )
    return json.dumps(dump_state(state)).encode()


async def fill_changelog(broker_url: str, keys: int) -> float:
    """Create the changelog topic and write `keys` states into it; returns the seconds taken."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    servers = broker_url.removeprefix("kafka://")
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(CHANGELOG, PARTITIONS, 1)])
    finally:
        await admin.close()
    began = time.monotonic()
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, linger_ms=20, max_batch_size=1 << 20, acks=1, max_request_size=1 << 22
    )
    await producer.start()
    try:
        partitions = list(range(PARTITIONS))
        template = state_value(0)
        pending = []
        for i in range(keys):
            key = str(uuid.UUID(int=i)).encode()
            # Same size and shape for every key without encoding a million models.
            value = template.replace(str(uuid.UUID(int=0)).encode(), key)
            partition = key_partitioner(key, partitions, partitions)
            pending.append(await producer.send(CHANGELOG, value, key=key, partition=partition))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - began


def worker_env(services: dict[str, str], data_dir: Path, store: str, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        **services,
        "STREAMAPP_APP_ID": APP_ID,
        "STREAMAPP_DATA_DIR": str(data_dir),
        "STREAMAPP_TABLE_STORE": store,
        "STREAMAPP_TOPIC_PARTITIONS": str(PARTITIONS),
        "STREAMAPP_WEB_PORT": str(port),
        "STREAMAPP_INGEST_PORT": str(free_port()),
        "STREAMAPP_CARTS_GRPC_PORT": str(free_port()),
        "STREAMAPP_MERCHANT_POOL_SIZE": "1",
        "STREAMAPP_WORKER_NICE": "0",
        "STREAMAPP_LOG_LEVEL": "INFO",
    }
    return env


def local_keys(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/tables/", timeout=120) as response:
        body: dict[str, Any] = json.load(response)
    return sum(t["local_keys"] for t in body["tables"] if t["name"] == "license-state")


def time_start(children: Children, name: str, env: dict[str, str], port: int, log: Path) -> Row:
    """Start a worker, time it to "Recovery complete", count its keys, stop it."""
    began = time.monotonic()
    proc = children.spawn(name, python("-m", "streamapp", "worker"), env=env, cwd=ROOT, grace=60.0)
    deadline = began + 900
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name}: the worker exited with {proc.returncode}")
        if log.exists() and RECOVERED in log.read_text(errors="replace"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: no {RECOVERED!r} after 900 s")
        time.sleep(0.1)
    seconds = time.monotonic() - began
    wait_http(f"http://127.0.0.1:{port}/ready", 60, proc)
    rss = psutil.Process(proc.pid).memory_info().rss / 1e6
    keys = local_keys(port)
    children.stop(proc)
    return Row(name, seconds, keys, rss)


def report(rows: list[Row], keys: int, fill: float) -> str:
    base = rows[0].seconds if rows else 0.0
    lines = [
        f"# Recovery of a worker with {keys:,} table keys ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Changelog written in {fill:.1f} s. Time = worker process start to Faust's "
        f"{RECOVERED!r}; baseline = the memory store in the same run.",
        "",
        "| scenario | start to recovered | vs baseline | keys held | worker RSS | notes |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row.seconds / base:.2f}x" if base else "-"
        lines.append(
            f"| {row.scenario} | {row.seconds:.1f} s | {ratio} | {row.keys:,} "
            f"| {row.rss_mb:,.0f} MB | {row.notes} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    children = Children(tmp)
    rows: list[Row] = []
    fill = 0.0
    try:
        services = start_services(children, tmp / "services")
        fill = asyncio.run(fill_changelog(services["STREAMAPP_BROKER_URL"], args.keys))
        port = free_port()
        memory = worker_env(services, tmp / "memory", "memory://", port)
        name = "memory store (baseline)"
        rows.append(time_start(children, name, memory, port, tmp / f"{name}.log"))
        rows[-1].notes = "replays the whole changelog at every start"
        durable = worker_env(services, tmp / "durable", "rocksdb://", port)
        name = "durable store, empty data dir"
        rows.append(time_start(children, name, durable, port, tmp / f"{name}.log"))
        rows[-1].notes = "replays the changelog once, into RocksDB"
        name = "durable store, restart"
        rows.append(time_start(children, name, durable, port, tmp / f"{name}.log"))
        rows[-1].notes = "local store current: reads nothing"
        # A new broker (memory storage): every changelog is empty now.
        children.stop_all()
        services = start_services(children, tmp / "services")
        durable = worker_env(services, tmp / "durable", "rocksdb://", port)
        name = "durable store, after a broker restart"
        rows.append(time_start(children, name, durable, port, tmp / f"{name}.log"))
        rows[-1].notes = "changelog empty: keeps the local state, writes it back to the changelog"
    finally:
        children.stop_all()
    text = report(rows, args.keys, fill)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"recovery-{datetime.now(UTC):%Y%m%d-%H%M%S}.md"
    out.write_text(text)
    print(f"written to {out}; logs in {tmp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
