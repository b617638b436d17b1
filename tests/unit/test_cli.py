"""The `streamapp` command line: --version, the environment in every --help, one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamapp.cli import build_parser
from streamapp.embedded import free_port
from streamapp.envhelp import GROUPS, group_of, variables
from streamapp.settings import Settings


def run(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMAPP_")}
    clean |= {"STREAMAPP_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [sys.executable, "-m", "streamapp", *argv],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The whole output: a line or two saying what to do, and no traceback."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, output
    assert all(line.startswith("streamapp: ") for line in lines), output
    return output


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_version(tmp_path: Path) -> None:
    result = run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "streamapp 0.1.0"


def test_every_subcommand_help_lists_options_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._subparsers._group_actions]  # type: ignore[union-attr]  # noqa: SLF001
    commands = dict(sub.choices)  # type: ignore[arg-type]
    assert {"services", "worker", "ingest", "dev", "migrate", "topics", "dead-letters"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([name, "--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert "options:" in text, name
        assert "environment (STREAMAPP_*" in text, name
        assert "STREAMAPP_DATA_DIR" in text, name
    help_of = {}
    for name in ("worker", "migrate", "dev"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([name, "--help"])
        help_of[name] = capsys.readouterr().out
    # A worker reads every setting: each field of the settings class is named (derived, not listed).
    flat = help_of["worker"].replace("\n      ", " ")
    for field in Settings.model_fields:
        assert f"STREAMAPP_{field.upper()}" in flat, field
    assert "STREAMAPP_DATABASE_URL" in help_of["migrate"]
    assert "STREAMAPP_CARTS_GRPC_PORT" not in help_of["migrate"]
    assert "--rate" in help_of["dev"]
    assert "--verbose" in help_of["dev"]
    assert "STREAMAPP_ASSISTANCE_SLACK_WEBHOOK_URL" in help_of["dev"]


def test_every_setting_falls_in_a_named_group() -> None:
    named = {name for name, _ in GROUPS}
    for field in Settings.model_fields:
        assert group_of(field) in named, f"{field}: add its prefix to streamapp/envhelp.py GROUPS"
    assert sum(len(v) for v in variables().values()) == len(Settings.model_fields)


def test_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    for command in ("worker", "services", "dev"):
        result = run(tmp_path, command, STREAMAPP_WEB_PORT="99999")
        assert result.returncode == 2, (command, result.stderr)
        output = one_line(result)
        assert "STREAMAPP_" in output
        assert "99999" not in output


def test_no_broker_reachable_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    result = run(tmp_path, "worker", STREAMAPP_BROKER_URL=f"kafka://127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"no broker reachable at 127.0.0.1:{port}" in one_line(result)
    # Without a broker URL and no `streamapp services` running: say how to get one.
    result = run(tmp_path, "topics")
    assert result.returncode == 1
    assert "streamapp services" in one_line(result)


def test_port_taken_is_one_line(tmp_path: Path, taken_port: int) -> None:
    result = run(tmp_path, "dev", STREAMAPP_WEB_PORT=str(taken_port))
    assert result.returncode == 1
    assert f"port {taken_port} on 127.0.0.1 is taken (STREAMAPP_WEB_PORT)" in one_line(result)
    result = run(tmp_path, "services", STREAMAPP_EMBEDDED_BROKER_PORT=str(taken_port))
    assert result.returncode == 1
    assert "STREAMAPP_EMBEDDED_BROKER_PORT" in one_line(result)


def test_a_port_shared_with_so_reuseport_is_taken(tmp_path: Path) -> None:
    """Another stack's ingest tier (SO_REUSEPORT) would silently share our ingest port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run(tmp_path, "dev", STREAMAPP_INGEST_PORT=str(port))
    assert result.returncode == 1
    assert "STREAMAPP_INGEST_PORT" in one_line(result)
