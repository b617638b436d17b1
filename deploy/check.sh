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
    echo "== helm template (ingest tier on / autoscaled / off)"
    out=$(helm template t "$chart" --set database.url=u)
    for want in "kind: Deployment" "name: t-streamapp-ingest" "STREAMAPP_INGEST_PORT" \
        "containerPort: 6067" "maxUnavailable: 0"; do
        grep -q "$want" <<<"$out" || { echo "ingest on: no '$want' in the output" >&2; exit 1; }
    done
    if grep -q "kind: HorizontalPodAutoscaler" <<<"$out"; then
        echo "ingest on: an HPA without ingest.autoscaling.enabled" >&2
        exit 1
    fi
    helm lint --strict "$chart" --set database.url=u --set ingest.autoscaling.enabled=true
    out=$(helm template t "$chart" --set database.url=u --set ingest.autoscaling.enabled=true \
        --show-only templates/ingest-hpa.yaml --show-only templates/ingest-deployment.yaml)
    grep -q "kind: HorizontalPodAutoscaler" <<<"$out" || { echo "autoscaling: no HPA" >&2; exit 1; }
    if grep -q "^  replicas:" <<<"$out"; then
        echo "autoscaling: the Deployment still sets replicas (the HPA owns them)" >&2
        exit 1
    fi
    out=$(helm template t "$chart" --set database.url=u --set ingest.enabled=false \
        --set ingest.replicaCount=0)
    if grep -qE "kind: (Deployment|HorizontalPodAutoscaler)|streamapp-ingest" <<<"$out"; then
        echo "ingest off: ingest objects rendered" >&2
        exit 1
    fi
    echo "== helm template (metrics: annotations on by default, ServiceMonitor off / on)"
    out=$(helm template t "$chart" --set database.url=u)
    grep -q 'prometheus.io/port: "6066"' <<<"$out" || { echo "metrics: no worker scrape annotations" >&2; exit 1; }
    grep -q 'prometheus.io/port: "6067"' <<<"$out" || { echo "metrics: no ingest scrape annotations" >&2; exit 1; }
    if grep -q "kind: ServiceMonitor" <<<"$out"; then
        echo "metrics: a ServiceMonitor without metrics.serviceMonitor.enabled" >&2
        exit 1
    fi
    out=$(helm template t "$chart" --set database.url=u --set metrics.podAnnotations=false)
    if grep -q "prometheus.io/" <<<"$out"; then
        echo "metrics: scrape annotations with metrics.podAnnotations=false" >&2
        exit 1
    fi
    helm lint --strict "$chart" --set database.url=u --set metrics.serviceMonitor.enabled=true
    out=$(helm template t "$chart" --set database.url=u --set metrics.serviceMonitor.enabled=true \
        --set metrics.serviceMonitor.labels.release=kps --show-only templates/servicemonitor.yaml)
    for want in "kind: ServiceMonitor" "port: http" "port: ingest" "path: /metrics" "release: kps"; do
        grep -q "$want" <<<"$out" || { echo "ServiceMonitor: no '$want' in the output" >&2; exit 1; }
    done
    if grep -q "authorization:" <<<"$out"; then
        echo "ServiceMonitor: credentials without metrics.serviceMonitor.bearerTokenSecret" >&2
        exit 1
    fi
    out=$(helm template t "$chart" --set database.url=u --set metrics.serviceMonitor.enabled=true \
        --set metrics.serviceMonitor.bearerTokenSecret.name=creds \
        --set metrics.serviceMonitor.bearerTokenSecret.key=admin-token \
        --show-only templates/servicemonitor.yaml)
    grep -q "key: admin-token" <<<"$out" || { echo "ServiceMonitor: no bearer token" >&2; exit 1; }
    echo "== helm template refuses bad values"
    for bad in "replicaCount=99" "config.STREAMAPP_DATABASE_URL=x" "config.OTHER=x" \
        "ingest.replicaCount=0" "ingest.port=0" "ingest.rollingUpdate.maxSurge=0" \
        "ingest.autoscaling.enabled=true,ingest.autoscaling.maxReplicas=1" \
        "ingest.autoscaling.enabled=true,ingest.resources.requests.cpu=null"; do
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
