"""The naive baseline: an aiohttp handler that INSERTs every request straight into PostgreSQL.

One asyncpg pool, one autocommitted INSERT per request, no broker, no validation
beyond "is a JSON object with an Id". Prints READY once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence

import asyncpg
from aiohttp import web

CREATE = """
CREATE TABLE IF NOT EXISTS bench_naive (
    id          bigserial PRIMARY KEY,
    customer_id text NOT NULL,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = "INSERT INTO bench_naive (customer_id, payload) VALUES ($1, $2)"
POOL_KEY = web.AppKey("pool", asyncpg.Pool)


async def webhook(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        record = json.loads(body)
        customer_id = str(record["Id"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": "malformed_body"}, status=400)
    await request.app[POOL_KEY].execute(INSERT, customer_id, body.decode())
    return web.json_response({"status": "accepted"}, status=202)


async def serve(dsn: str, host: str, port: int, pool_size: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    await pool.execute(CREATE)
    app = web.Application()
    app[POOL_KEY] = pool
    app.router.add_post("/salesforce/webhook", webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("READY", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.naive_server", description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=10)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.dsn, args.host, args.port, args.pool_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
