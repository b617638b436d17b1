"""The person at the terminal: where `streamapp dev` writes its banner and progress when logs go to a file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

_terminal: TextIO | None = None


def terminal() -> TextIO:
    """The terminal's stream: stderr, unless `send_logs_to` moved the logs off it."""
    return _terminal if _terminal is not None else sys.stderr


def send_logs_to(path: Path) -> None:
    """Point this process's stdout and stderr (and so its children's) at `path`; keep the terminal.

    At the file-descriptor level: Faust's own start-up banner, native libraries
    and every child process inherit it, not just Python's logging.
    """
    global _terminal
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    _terminal = os.fdopen(saved, "w", buffering=1, closefd=True)


def say(text: str) -> None:
    stream = terminal()
    stream.write(text + "\n")
    stream.flush()
