"""deploy/check_settings.py: a container whose settings would not load is one FAIL line, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def check(kind: str, config: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "check_settings.py"), kind],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def service(**env: str) -> dict[str, object]:
    return {"services": {"worker": {"environment": {"STREAMAPP_BROKER_URL": "kafka://broker:9092", **env}}}}


def test_a_service_that_would_not_start_is_reported_as_fail() -> None:
    # Found: load_settings raises InvalidSettings, the check caught only pydantic's
    # ValidationError, so a bad container crashed the check with a traceback.
    result = check("compose", service(STREAMAPP_ENV="prod", STREAMAPP_WEB_PORT="not-a-port"))
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert "FAIL service worker" in result.stderr
    assert "STREAMAPP_WEB_PORT" in result.stderr
    # The problems name variables; they never echo a value (it could be a secret).
    assert "not-a-port" not in result.stderr


def test_a_service_that_would_start_is_ok() -> None:
    result = check(
        "compose",
        service(STREAMAPP_DATABASE_URL="postgresql://streamapp@db/streamapp"),
    )
    assert result.returncode == 0, result
    assert "ok   service worker" in result.stdout
