"""The Faust baseline: a bare one-agent pass-through (raw topic in -> raw topic out)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import faust


def build_app(broker: str, app_id: str, source: str, sink: str, datadir: str) -> faust.App:
    """The same Faust knobs streamapp uses (raw codecs, small session timeout for Tansu)."""
    app = faust.App(
        app_id,
        broker=broker,
        autodiscover=False,
        datadir=datadir,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=4,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    inbound = app.topic(source, key_type=bytes, value_type=bytes)
    outbound = app.topic(sink, key_type=bytes, value_type=bytes)

    @app.agent(inbound, name="bench.passthrough")
    async def passthrough(stream: faust.StreamT[Any]) -> None:
        async for key, value in stream.items():
            await outbound.send(key=key, value=value)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.passthrough", description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--datadir", required=True)
    args = parser.parse_args(argv)
    app = build_app(args.broker, args.app_id, args.source, args.sink, args.datadir)
    worker = faust.Worker(app, loglevel="WARNING", redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
