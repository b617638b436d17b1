"""Build streamapp's settings exactly as each shipped container would, and fail if one would not start.

Reads rendered deployment files as JSON on stdin:

    helm template ... | <YAML documents to a JSON list> | .venv/bin/python deploy/check_settings.py chart
    docker compose config --format json | .venv/bin/python deploy/check_settings.py compose

For every streamapp container (init containers included) it collects the
environment the container gets (ConfigMap, env entries, the env file compose
inlines) and the secret files the chart mounts, then runs the settings loader
the processes run. Values that live in a Secret outside the chart (an
`existingSecret`) or come from the downward API are stand-ins.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamapp.errors import InvalidSettings
from streamapp.settings import load_settings

# Long enough for every length check (the carts key needs 32 bytes).
STAND_IN = "stand-in-for-a-value-kept-outside-the-chart-0123456789"


def _check(label: str, env: dict[str, str], files: dict[str, str]) -> bool:
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("STREAMAPP_")]:
            del os.environ[key]
        with tempfile.TemporaryDirectory() as folder:
            for name, value in files.items():
                (Path(folder) / name).write_text(value + "\n")
            os.environ.update(env)
            if files:
                os.environ["STREAMAPP_SECRETS_DIR"] = folder
            try:
                settings = load_settings()
            except InvalidSettings as exc:
                # One line per problem, naming the variable and never its value (it may be a secret).
                print(f"FAIL {label}: {'; '.join(exc.problems)}", file=sys.stderr)
                return False
        print(f"ok   {label}: env={settings.env}, {len(files)} secret file(s)")
        return True
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _expand(value: str, env: dict[str, str]) -> str:
    # Kubernetes' $(VAR) references; unknown ones (the downward API) get a stand-in.
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), "pod"), value)


def _chart_containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d and d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d.get("stringData", {}) for d in docs if d and d["kind"] == "Secret"}
    for doc in docs:
        if not doc or doc["kind"] not in ("StatefulSet", "Deployment"):
            continue
        pod = doc["spec"]["template"]["spec"]
        files: dict[str, str] = {}
        for volume in pod.get("volumes", []):
            for source in volume.get("projected", {}).get("sources", []):
                secret = source.get("secret")
                if secret is None:
                    continue
                for item in secret.get("items", []):
                    files[item["path"]] = secrets.get(secret["name"], {}).get(item["key"], STAND_IN)
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(configmaps[source["configMapRef"]["name"]])
            for entry in container.get("env", []):
                env[entry["name"]] = _expand(entry["value"], env) if "value" in entry else STAND_IN
            mounted = any(m["name"] == "secrets" for m in container.get("volumeMounts", []))
            label = f"{doc['kind']}/{doc['metadata']['name']} container {container['name']}"
            yield label, env, files if mounted else {}


def _compose_containers(config: dict[str, Any]) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    for name, service in config["services"].items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items() if v is not None}
        if any(k.startswith("STREAMAPP_") for k in env) and "STREAMAPP_BROKER_URL" in env:
            yield f"service {name}", env, {}


def main(kind: str) -> int:
    data = json.load(sys.stdin)
    containers = _chart_containers(data) if kind == "chart" else _compose_containers(data)
    results = [_check(label, env, files) for label, env, files in containers]
    if not results:
        print("no streamapp containers found", file=sys.stderr)
        return 1
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
