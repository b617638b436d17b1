"""The `streamapp` command: services, worker, ingest, dev, dead-letters, migrate, topics."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from streamapp.errors import CannotStart, InvalidSettings
from streamapp.processes import READY_LINE, ignore_further_stop_signals, run_worker, setup_logging
from streamapp.settings import Settings, load_settings

if TYPE_CHECKING:
    pass

log = logging.getLogger("streamapp")
# --- services ---------------------------------------------------------------------


async def _run_services(settings: Settings) -> None:
    from streamapp.embedded import EmbeddedBroker, EmbeddedPostgres, write_env_file

    started: list[EmbeddedBroker | EmbeddedPostgres] = []
    env: dict[str, str] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if settings.broker_url is None:
            broker = EmbeddedBroker(
                settings.embedded_broker_host,
                settings.embedded_broker_port,
                settings.data_dir / "broker.log",
            )
            await broker.start()
            started.append(broker)
            env["STREAMAPP_BROKER_URL"] = broker.url
        else:
            env["STREAMAPP_BROKER_URL"] = settings.broker_url
        if settings.database_url is None:
            postgres = EmbeddedPostgres(settings.data_dir / "pgdata")
            await postgres.start()
            started.append(postgres)
            env["STREAMAPP_DATABASE_URL"] = postgres.url
        else:
            env["STREAMAPP_DATABASE_URL"] = settings.postgres_dsn
        write_env_file(settings.services_env_file, env)
        for key, value in env.items():
            print(f"{key}={value}", flush=True)
        print(READY_LINE, flush=True)
        await stop.wait()
    finally:
        ignore_further_stop_signals(loop)
        # The broker first, PostgreSQL last (the order they were started in): a worker
        # still stopping may need the database after the broker is gone.
        for service in started:
            await service.stop()
        with contextlib.suppress(FileNotFoundError):
            settings.services_env_file.unlink()


def cmd_services(args: argparse.Namespace) -> int:
    # Not load_settings(): the env file it would read is the one this command writes.
    settings = _plain_settings()
    setup_logging(settings)
    if settings.broker_url is None:
        from streamapp.preflight import check_ports

        host, port = settings.embedded_broker_host, settings.embedded_broker_port
        check_ports([("STREAMAPP_EMBEDDED_BROKER_PORT", host, port)])
    asyncio.run(_run_services(settings))
    return 0


def _plain_settings() -> Settings:
    """The environment's settings; InvalidSettings (one line per problem) rather than a traceback."""
    from pydantic import ValidationError

    from streamapp.settings import problems

    try:
        return Settings()
    except ValidationError as exc:
        raise InvalidSettings(problems(exc)) from None


async def _run_standins(settings: Settings) -> None:
    from streamapp.standins import StandIns

    standins = StandIns("127.0.0.1", settings.data_dir / "standins.jsonl")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await standins.start()
    try:
        for key, value in standins.env().items():
            print(f"{key}={value}", flush=True)
        print(READY_LINE, flush=True)
        await stop.wait()
    finally:
        ignore_further_stop_signals(loop)
        await standins.stop()


def cmd_standins(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup_logging(settings)
    asyncio.run(_run_standins(settings))
    return 0


# --- worker -----------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from streamapp.preflight import check_broker, check_ports, server_ports

    settings = load_settings()
    check_broker(settings)
    check_ports(server_ports(settings, ingest=False, worker=True))
    return run_worker(settings)


def cmd_ingest(args: argparse.Namespace) -> int:
    from streamapp.preflight import check_broker

    settings = load_settings()
    # No port check: ingest processes share their port on purpose (SO_REUSEPORT).
    check_broker(settings)
    return run_worker(settings, role="ingest")


def _broker_settings() -> Settings:
    """The settings of a command that talks to the broker, once it answers."""
    from streamapp.preflight import check_broker

    settings = load_settings()
    check_broker(settings)
    return settings


# --- dev --------------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace) -> int:
    from streamapp.dev_cli import run_dev

    return run_dev(args)


# --- dead letters -----------------------------------------------------------------


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from streamapp.deadletter_cli import list_letters, replay_letters

    settings = _broker_settings()
    if args.action == "list":
        return asyncio.run(list_letters(settings, args))
    return asyncio.run(replay_letters(settings, args))


# --- migrate / topics (deploy steps) ------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    from streamapp.migrate_cli import run_migrate

    settings = load_settings()
    setup_logging(settings)
    return asyncio.run(run_migrate(settings, status_only=args.status))


def cmd_topics(args: argparse.Namespace) -> int:
    from streamapp.topics_cli import main_topics

    settings = _broker_settings()
    setup_logging(settings)
    return main_topics(settings, create=args.create)


def _add_deploy_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = _command(
        sub,
        "migrate",
        "apply pending PostgreSQL migrations (a deploy step / init container)",
        DATABASE,
        (
            "Apply every pipeline's pending migrations (under the lock workers take at start). "
            "Exit status 0: up to date; 1: migrations pending (--status); "
            "2: an applied migration's file has changed since."
        ),
    )
    migrate.add_argument(
        "--status", action="store_true", help="list applied / pending / changed; change nothing"
    )
    migrate.set_defaults(func=cmd_migrate)
    topics = _command(
        sub,
        "topics",
        "list the topics the app declares, or create them (a deploy step / init container)",
        BROKER,
        (
            "Without options: every topic the pipelines declare, with its kind (pipeline: created by "
            "--create; changelog: created by Faust, compacted). --create creates the missing pipeline "
            "topics with STREAMAPP_TOPIC_PARTITIONS / _REPLICATION and exits 1 if any existing topic "
            "has another partition count."
        ),
    )
    topics.add_argument("--list", action="store_true", help="list (the default)")
    topics.add_argument(
        "--create", action="store_true", help="create the missing pipeline topics and check counts"
    )
    topics.set_defaults(func=cmd_topics)


# --- rebuild-state ----------------------------------------------------------------


def cmd_rebuild_state(args: argparse.Namespace) -> int:
    from streamapp.rebuild import rebuild_state, rebuildable

    # No broker needed: it writes the local store; the next worker fills the changelog.
    # Checked here, not by argparse choices: which pipelines can rebuild is theirs to
    # say (Pipeline.rebuild), and the parser must not import every pipeline.
    known = sorted(rebuildable())
    if args.pipeline not in known:
        choices = ", ".join(repr(name) for name in known)
        print(
            f"streamapp rebuild-state: error: argument pipeline: invalid choice: {args.pipeline!r} "
            f"(choose from {choices})",
            file=sys.stderr,
        )
        return 2
    settings = load_settings()
    setup_logging(settings)
    print(asyncio.run(rebuild_state(settings, args.pipeline)), flush=True)
    return 0


def _add_rebuild_state(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rebuild = _command(
        sub,
        "rebuild-state",
        "rebuild a pipeline's table from PostgreSQL into this data directory's store (workers stopped)",
        ("general", "postgres", "broker"),
    )
    # The pipelines whose table PostgreSQL holds enough to rebuild (Pipeline.rebuild).
    rebuild.add_argument("pipeline", help="a pipeline with a table PostgreSQL can rebuild")
    rebuild.set_defaults(func=cmd_rebuild_state)


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    groups: Sequence[str] | None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with the environment variables it reads (None: all)."""
    from streamapp.envhelp import epilog

    return sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog(groups),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# The settings groups (streamapp/envhelp.py) each command reads besides "general".
BROKER = ("general", "broker", "embedded")
DATABASE = ("general", "postgres")


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(prog="streamapp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('streamapp')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    _command(sub, "services", "run the embedded broker and PostgreSQL", (*BROKER, "postgres")).set_defaults(
        func=cmd_services
    )
    _command(sub, "standins", "run the dev stand-ins for Slack and e-mail (a mail catcher)", ("general",))
    sub.choices["standins"].set_defaults(func=cmd_standins)
    _command(sub, "worker", "run one worker (agents + web views + carts gRPC)", None).set_defaults(
        func=cmd_worker
    )
    _command(
        sub, "ingest", "run one ingest process (webhooks -> topics only, on STREAMAPP_INGEST_PORT)", None
    ).set_defaults(func=cmd_ingest)
    from streamapp.dev_cli import add_dev

    add_dev(sub, _command, cmd_dev)
    dl = _command(sub, "dead-letters", "read or re-inject dead letters", (*BROKER, "postgres", "processing"))
    dl.add_argument("action", choices=["list", "replay"])
    dl.add_argument("--pipeline", help="only this pipeline's letters")
    dl.add_argument("--reason", help="only letters with this reason")
    dl.add_argument("--id", action="append", dest="ids", help="only this dead_letter_id (repeatable)")
    dl.add_argument("--limit", type=int, default=1000, help="at most this many (list)")
    dl.add_argument("--json", action="store_true", help="one JSON object per line (list)")
    dl.add_argument("--dry-run", action="store_true", help="show what replay would send")
    dl.set_defaults(func=cmd_dead_letters)
    _add_deploy_commands(sub)
    _add_rebuild_state(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except InvalidSettings as exc:
        # One line per problem and no traceback: the values may be secrets.
        from streamapp.console import say

        for line in exc.problems:
            say(f"streamapp: {line}")
        say("streamapp: fix the variable(s) above (environment, or a file in STREAMAPP_SECRETS_DIR)")
        return 2
    except CannotStart as exc:
        from streamapp.console import say

        say(f"streamapp: {exc.detail}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
