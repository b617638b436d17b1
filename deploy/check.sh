#!/usr/bin/env bash
# Static checks of the deployment files; no Docker engine or cluster needed.
# Each check runs only if its tool is on PATH (see deploy/README.md, "Checking
# these files", for where the tools come from).
#   bash deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ran=0

if command -v hadolint >/dev/null; then
    echo "== hadolint Dockerfile"
    hadolint Dockerfile
    ran=$((ran + 1))
fi

if docker compose version >/dev/null 2>&1; then
    echo "== docker compose config"
    docker compose -f docker-compose.yaml config -q
    docker compose -f docker-compose.yaml --profile simulate config -q
    ran=$((ran + 1))
fi

if command -v helm >/dev/null; then
    chart=deploy/helm/streamapp
    echo "== helm lint"
    helm lint --strict "$chart" --set database.url=postgresql://u:p@db:5432/streamapp
    echo "== helm template (inline secrets / existing secrets)"
    helm template t "$chart" --set database.url=postgresql://u:p@db:5432/streamapp \
        --set salesforce.secret=s >/dev/null
    helm template t "$chart" --set database.existingSecret=pg \
        --set salesforce.existingSecret=sf --set topics.create=false >/dev/null
    echo "== helm template refuses bad values"
    for bad in "replicaCount=99" "config.STREAMAPP_DATABASE_URL=x" "config.OTHER=x"; do
        if helm template t "$chart" --set database.url=u --set "$bad" >/dev/null 2>&1; then
            echo "expected a failure with --set $bad" >&2
            exit 1
        fi
    done
    if helm template t "$chart" >/dev/null 2>&1; then
        echo "expected a failure without database.url/existingSecret" >&2
        exit 1
    fi
    ran=$((ran + 1))
fi

echo "deploy checks: $ran tool(s) ran"
