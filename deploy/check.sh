#!/usr/bin/env bash
# Static checks of the deployment files; no Docker engine or cluster needed.
# Each check runs only if its tool is on PATH (see deploy/README.md, "Checking
# these files", for where the tools come from; deploy/tools.sh installs them).
#   bash deploy/check.sh              whatever is on PATH
#   make deploy-check                 every tool, pinned, from .tools/ (what CI runs)
# With DEPLOY_CHECK_ALL=1 a missing tool is an error, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
ran=0

if command -v hadolint >/dev/null; then
    echo "== hadolint Dockerfile"
    hadolint Dockerfile
    ran=$((ran + 1))
fi

# Builds streamapp's settings as each rendered container would (deploy/check_settings.py):
# needs the project's venv and a python3 with PyYAML for the chart's YAML.
settings_check() {
    if [ -x .venv/bin/python ]; then
        .venv/bin/python deploy/check_settings.py "$1"
    elif [ "${DEPLOY_CHECK_ALL:-0}" = 1 ]; then
        echo "no .venv: the settings check of the $1 cannot run (make .venv/.installed)" >&2
        exit 1
    else
        echo "(no .venv: settings check of the $1 skipped)"
        cat >/dev/null
    fi
}
yaml_to_json() {
    # deploy/tools.sh puts a python with PyYAML on PATH as yaml-python.
    "$(command -v yaml-python || echo python3)" -c \
        'import json, sys, yaml; json.dump([*yaml.safe_load_all(sys.stdin)], sys.stdout)'
}
# The docker CLI's Compose plugin, or the standalone Compose v2 binary.
if docker compose version >/dev/null 2>&1; then
    compose() { docker compose "$@"; }
elif command -v docker-compose >/dev/null && docker-compose version 2>/dev/null | grep -q "v2"; then
    compose() { docker-compose "$@"; }
fi
missing=()
command -v hadolint >/dev/null || missing+=(hadolint)
declare -F compose >/dev/null || missing+=("docker compose")
command -v helm >/dev/null || missing+=(helm)
if [ "${DEPLOY_CHECK_ALL:-0}" = 1 ] && [ ${#missing[@]} -gt 0 ]; then
    echo "deploy checks: missing ${missing[*]} (run deploy/tools.sh)" >&2
    exit 1
fi

if declare -F compose >/dev/null; then
    echo "== docker compose config (with the example env file)"
    export STREAMAPP_ENV_FILE=deploy/compose/streamapp.env.example
    compose -f docker-compose.yaml config -q
    compose -f docker-compose.yaml --profile simulate config -q
    echo "== compose: every streamapp service's settings load (STREAMAPP_ENV=prod)"
    compose -f docker-compose.yaml --profile simulate config --format json | settings_check compose
    if STREAMAPP_ENV_FILE=deploy/compose/no-such.env compose -f docker-compose.yaml config -q 2>/dev/null; then
        echo "compose: expected a refusal without the env file (prod needs its credentials)" >&2
        exit 1
    fi
    unset STREAMAPP_ENV_FILE
    ran=$((ran + 1))
fi

if command -v helm >/dev/null; then
    chart=deploy/helm/streamapp
    # What STREAMAPP_ENV=prod (the chart's default) needs, inline.
    prod=(--set database.url=postgresql://u:p@db:5432/streamapp --set salesforce.secret=s
        --set admin.token=a --set read.token=r --set tasks.secret=t --set assistance.botToken=b
        --set carts.jwtSecret=0123456789abcdef0123456789abcdef --set carts.audience=shop)
    # The same from existing Secrets.
    existing=(--set database.existingSecret=pg --set salesforce.existingSecret=sf
        --set admin.existingSecret=creds --set read.existingSecret=creds --set tasks.existingSecret=creds
        --set assistance.existingSecret=creds --set carts.existingSecret=creds --set carts.audience=shop)
    echo "== helm lint (values.schema.json included)"
    helm lint --strict "$chart" "${prod[@]}"
    helm lint --strict "$chart" "${existing[@]}"
    echo "== helm template: every container's settings load (inline / existing Secrets / SASL_SSL)"
    helm template t "$chart" "${prod[@]}" | yaml_to_json | settings_check chart
    helm template t "$chart" "${existing[@]}" --set topics.create=false | yaml_to_json | settings_check chart
    out=$(helm template t "$chart" "${existing[@]}" --set broker.securityProtocol=SASL_SSL \
        --set broker.sasl.mechanism=SCRAM-SHA-512 --set broker.sasl.username=svc \
        --set broker.sasl.existingSecret=kafka --set broker.tls.existingSecret=kafka-ca)
    settings_check chart <<<"$(yaml_to_json <<<"$out")"
    for want in "path: STREAMAPP_BROKER_SASL_PASSWORD" "STREAMAPP_BROKER_SSL_CAFILE" \
        'args: ["topics","--create"]' 'args: ["migrate"]' "path: STREAMAPP_ADMIN_TOKEN" \
        "path: STREAMAPP_READ_TOKEN" "path: STREAMAPP_TASKS_SECRET" \
        "path: STREAMAPP_ASSISTANCE_BOT_TOKEN" "path: STREAMAPP_CARTS_JWT_SECRET"; do
        grep -qF "$want" <<<"$out" || { echo "SASL_SSL: no '$want' in the output" >&2; exit 1; }
    done
    if grep -q "STREAMAPP_WORKER_NAME\|kind: Job" <<<"$out"; then
        echo "STREAMAPP_WORKER_NAME (read by nothing) or the old topic Job rendered" >&2
        exit 1
    fi
    echo "== helm template (ingest tier on / autoscaled / off)"
    out=$(helm template t "$chart" "${prod[@]}")
    for want in "kind: Deployment" "name: t-streamapp-ingest" "STREAMAPP_INGEST_PORT" \
        "containerPort: 6067" "maxUnavailable: 0"; do
        grep -q "$want" <<<"$out" || { echo "ingest on: no '$want' in the output" >&2; exit 1; }
    done
    if grep -q "kind: HorizontalPodAutoscaler" <<<"$out"; then
        echo "ingest on: an HPA without ingest.autoscaling.enabled" >&2
        exit 1
    fi
    helm lint --strict "$chart" "${prod[@]}" --set ingest.autoscaling.enabled=true
    out=$(helm template t "$chart" "${prod[@]}" --set ingest.autoscaling.enabled=true \
        --show-only templates/ingest-hpa.yaml --show-only templates/ingest-deployment.yaml)
    grep -q "kind: HorizontalPodAutoscaler" <<<"$out" || { echo "autoscaling: no HPA" >&2; exit 1; }
    if grep -q "^  replicas:" <<<"$out"; then
        echo "autoscaling: the Deployment still sets replicas (the HPA owns them)" >&2
        exit 1
    fi
    out=$(helm template t "$chart" "${prod[@]}" --set ingest.enabled=false \
        --set ingest.replicaCount=0)
    if grep -qE "kind: (Deployment|HorizontalPodAutoscaler)|streamapp-ingest" <<<"$out"; then
        echo "ingest off: ingest objects rendered" >&2
        exit 1
    fi
    echo "== helm template (metrics: annotations on by default, ServiceMonitor off / on)"
    out=$(helm template t "$chart" "${prod[@]}")
    grep -q 'prometheus.io/port: "6066"' <<<"$out" || { echo "metrics: no worker scrape annotations" >&2; exit 1; }
    grep -q 'prometheus.io/port: "6067"' <<<"$out" || { echo "metrics: no ingest scrape annotations" >&2; exit 1; }
    if grep -q "kind: ServiceMonitor" <<<"$out"; then
        echo "metrics: a ServiceMonitor without metrics.serviceMonitor.enabled" >&2
        exit 1
    fi
    out=$(helm template t "$chart" "${prod[@]}" --set metrics.podAnnotations=false)
    if grep -q "prometheus.io/" <<<"$out"; then
        echo "metrics: scrape annotations with metrics.podAnnotations=false" >&2
        exit 1
    fi
    helm lint --strict "$chart" "${prod[@]}" --set metrics.serviceMonitor.enabled=true
    out=$(helm template t "$chart" "${prod[@]}" --set metrics.serviceMonitor.enabled=true \
        --set metrics.serviceMonitor.labels.release=kps --show-only templates/servicemonitor.yaml)
    for want in "kind: ServiceMonitor" "port: http" "port: ingest" "path: /metrics" "release: kps"; do
        grep -q "$want" <<<"$out" || { echo "ServiceMonitor: no '$want' in the output" >&2; exit 1; }
    done
    if grep -q "authorization:" <<<"$out"; then
        echo "ServiceMonitor: credentials without metrics.serviceMonitor.bearerTokenSecret" >&2
        exit 1
    fi
    out=$(helm template t "$chart" "${prod[@]}" --set metrics.serviceMonitor.enabled=true \
        --set metrics.serviceMonitor.bearerTokenSecret.name=creds \
        --set metrics.serviceMonitor.bearerTokenSecret.key=admin-token \
        --show-only templates/servicemonitor.yaml)
    grep -q "key: admin-token" <<<"$out" || { echo "ServiceMonitor: no bearer token" >&2; exit 1; }
    echo "== helm template refuses bad values"
    for bad in "replicaCount=99" "config.STREAMAPP_DATABASE_URL=x" "config.OTHER=x" \
        "config.STREAMAPP_ADMIN_TOKEN=x" "config.STREAMAPP_READ_TOKEN=x" "salesforce.secret=" \
        "admin.token=" "read.token=" "tasks.secret=" "assistance.botToken=" "carts.jwtSecret=" \
        "carts.jwtSecret=short" "carts.audience=" "topics.names={a}" "broker.securityProtocol=TLS" \
        "broker.securityProtocol=SASL_SSL" "broker.tls.existingSecret=ca,broker.tls.certKey=tls.crt" \
        "ingest.replicaCount=0" "ingest.port=0" "ingest.rollingUpdate.maxSurge=0" \
        "ingest.autoscaling.enabled=true,ingest.autoscaling.maxReplicas=1" \
        "ingest.autoscaling.enabled=true,ingest.resources.requests.cpu=null"; do
        if helm template t "$chart" "${prod[@]}" --set "$bad" >/dev/null 2>&1; then
            echo "expected a failure with --set $bad" >&2
            exit 1
        fi
    done
    if helm template t "$chart" --set config.STREAMAPP_ENV=dev >/dev/null 2>&1; then
        echo "expected a failure without database.url/existingSecret" >&2
        exit 1
    fi
    # Outside prod the doors may stay open: it renders, and NOTES warns.
    helm template t "$chart" --set database.url=u --set config.STREAMAPP_ENV=dev >/dev/null
    ran=$((ran + 1))
fi

echo "deploy checks: $ran tool(s) ran${missing[*]:+; skipped (not on PATH): ${missing[*]}}"
