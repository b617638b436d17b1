{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "streamapp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. Kept short enough that "<fullname>-headless" and the
StatefulSet's pod names ("<fullname>-N") stay valid DNS labels.
*/}}
{{- define "streamapp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "streamapp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streamapp.headlessName" -}}
{{- printf "%s-headless" (include "streamapp.fullname" .) }}
{{- end }}

{{- define "streamapp.labels" -}}
helm.sh/chart: {{ include "streamapp.chart" . }}
{{ include "streamapp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "streamapp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end }}

{{/* The ingest tier's Deployment, Service, PDB and HPA (<fullname> is at most 50 characters). */}}
{{- define "streamapp.ingestName" -}}
{{- printf "%s-ingest" (include "streamapp.fullname" .) }}
{{- end }}

{{/* Like streamapp.labels, with component "ingest": the workers' selector never matches these pods. */}}
{{- define "streamapp.ingestLabels" -}}
helm.sh/chart: {{ include "streamapp.chart" . }}
{{ include "streamapp.ingestSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "streamapp.ingestSelectorLabels" -}}
app.kubernetes.io/name: {{ include "streamapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: ingest
{{- end }}

{{- define "streamapp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streamapp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "streamapp.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret the chart writes (only the keys it manages go in it). */}}
{{- define "streamapp.secretName" -}}
{{- include "streamapp.fullname" . }}
{{- end }}

{{/* True (non-empty) when the chart's own Secret holds the database URL. */}}
{{- define "streamapp.ownsDatabaseSecret" -}}
{{- if not .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/* True (non-empty) when the chart's own Secret holds the Salesforce secret. */}}
{{- define "streamapp.ownsSalesforceSecret" -}}
{{- if and (not .Values.salesforce.existingSecret) .Values.salesforce.secret }}true{{ end }}
{{- end }}

{{- define "streamapp.salesforceEnabled" -}}
{{- if or .Values.salesforce.existingSecret .Values.salesforce.secret }}true{{ end }}
{{- end }}

{{/* True (non-empty) when the chart's own Secret holds the carts JWT key. */}}
{{- define "streamapp.ownsCartsSecret" -}}
{{- if and (not .Values.carts.existingSecret) .Values.carts.jwtSecret }}true{{ end }}
{{- end }}

{{- define "streamapp.cartsAuthEnabled" -}}
{{- if or .Values.carts.existingSecret .Values.carts.jwtSecret }}true{{ end }}
{{- end }}

{{/*
Pod annotations that roll the pods when the ConfigMap or the Secret changes.
*/}}
{{- define "streamapp.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}

{{/* envFrom of every streamapp container: the chart's ConfigMap, then extraEnvFrom. */}}
{{- define "streamapp.envFrom" -}}
- configMapRef:
    name: {{ include "streamapp.fullname" . }}
{{- with .Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The env entries workers and ingest processes share: the broker, the secrets, then
extraEnv (last, so it can add what the chart does not set). Called with
(dict "root" $ "carts" BOOL): the carts JWT key only where `carts` is true (the
workers, which run the carts gRPC server; the ingest tier never verifies a token).
*/}}
{{- define "streamapp.env" -}}
{{- $root := .root -}}
- name: STREAMAPP_BROKER_URL
  value: {{ $root.Values.broker.url | quote }}
- name: STREAMAPP_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.database.existingSecret | default (include "streamapp.secretName" $root) }}
      key: {{ $root.Values.database.existingSecretKey }}
{{- if include "streamapp.salesforceEnabled" $root }}
- name: STREAMAPP_SALESFORCE_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.salesforce.existingSecret | default (include "streamapp.secretName" $root) }}
      key: {{ $root.Values.salesforce.existingSecretKey }}
{{- end }}
{{- if and .carts (include "streamapp.cartsAuthEnabled" $root) }}
- name: STREAMAPP_CARTS_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.carts.existingSecret | default (include "streamapp.secretName" $root) }}
      key: {{ $root.Values.carts.existingSecretKey }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Render a config value as the string an env var needs. Helm parses bare YAML
numbers as float64, which would print 1048576 as "1.048576e+06": whole numbers
are printed as integers.
*/}}
{{- define "streamapp.envValue" -}}
{{- if kindIs "float64" . }}
{{- if eq . (floor .) }}{{ printf "%d" (int64 .) }}{{ else }}{{ toString . }}{{ end }}
{{- else if kindIs "invalid" . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* Checks that would otherwise only fail once the pods start. */}}
{{- define "streamapp.validate" -}}
{{- if and (not .Values.database.existingSecret) (not .Values.database.url) }}
{{- fail "set database.url or database.existingSecret (the PostgreSQL URL)" }}
{{- end }}
{{- if not .Values.broker.url }}
{{- fail "set broker.url (e.g. kafka://kafka-0.kafka:9092;kafka://kafka-1.kafka:9092)" }}
{{- end }}
{{- $partitions := index .Values.config "STREAMAPP_TOPIC_PARTITIONS" | default "4" | int }}
{{- if gt (int .Values.replicaCount) $partitions }}
{{- fail (printf "replicaCount (%d) is larger than config.STREAMAPP_TOPIC_PARTITIONS (%d): the extra workers would get no partition" (int .Values.replicaCount) $partitions) }}
{{- end }}
{{- range $key, $_ := .Values.config }}
{{- if not (hasPrefix "STREAMAPP_" $key) }}
{{- fail (printf "config.%s: only STREAMAPP_* settings belong in config (use extraEnv for others)" $key) }}
{{- end }}
{{- if has $key (list "STREAMAPP_DATABASE_URL" "STREAMAPP_SALESFORCE_SECRET" "STREAMAPP_CARTS_JWT_SECRET") }}
{{- fail (printf "config.%s is a secret: use database.* / salesforce.* / carts.* (it would land in a ConfigMap)" $key) }}
{{- end }}
{{- end }}
{{- if and (not .Values.carts.existingSecret) .Values.carts.jwtSecret (lt (len (toString .Values.carts.jwtSecret)) 32) }}
{{- fail "carts.jwtSecret must be at least 32 bytes (an HS256 key; the workers would refuse to start)" }}
{{- end }}
{{- if .Values.ingest.enabled }}
{{- include "streamapp.validateIngest" . }}
{{- end }}
{{- end }}

{{/* The ingest tier's values (only when ingest.enabled). */}}
{{- define "streamapp.validateIngest" -}}
{{- $ingest := .Values.ingest }}
{{- $scaling := $ingest.autoscaling }}
{{- if $scaling.enabled }}
{{- if lt (int $scaling.minReplicas) 1 }}
{{- fail "ingest.autoscaling.minReplicas must be at least 1" }}
{{- end }}
{{- if lt (int $scaling.maxReplicas) (int $scaling.minReplicas) }}
{{- fail (printf "ingest.autoscaling.maxReplicas (%d) is smaller than minReplicas (%d)" (int $scaling.maxReplicas) (int $scaling.minReplicas)) }}
{{- end }}
{{- if lt (int $scaling.targetCPUUtilizationPercentage) 1 }}
{{- fail "ingest.autoscaling.targetCPUUtilizationPercentage must be at least 1" }}
{{- end }}
{{- if not (dig "requests" "cpu" "" ($ingest.resources | default dict)) }}
{{- fail "ingest.autoscaling needs ingest.resources.requests.cpu (CPU utilization is measured against it)" }}
{{- end }}
{{- else if lt (int $ingest.replicaCount) 1 }}
{{- fail (printf "ingest.replicaCount (%d) must be at least 1 while ingest.enabled (set ingest.enabled=false for no ingest tier)" (int $ingest.replicaCount)) }}
{{- end }}
{{- range $key, $port := dict "ingest.port" $ingest.port "ingest.service.port" $ingest.service.port }}
{{- if or (lt (int $port) 1) (gt (int $port) 65535) }}
{{- fail (printf "%s must be a port number (1-65535), not %v" $key $port) }}
{{- end }}
{{- end }}
{{- $surge := toString $ingest.rollingUpdate.maxSurge }}
{{- $unavailable := toString $ingest.rollingUpdate.maxUnavailable }}
{{- if and (has $surge (list "0" "0%" "<nil>")) (has $unavailable (list "0" "0%" "<nil>")) }}
{{- fail "ingest.rollingUpdate: maxSurge and maxUnavailable cannot both be 0 (keep maxUnavailable 0 and maxSurge >= 1)" }}
{{- end }}
{{- end }}

{{/* Prometheus pod annotations (metrics.podAnnotations); takes (list $ port). */}}
{{- define "streamapp.scrapeAnnotations" -}}
{{- $root := index . 0 -}}
{{- if $root.Values.metrics.podAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/path: /metrics
prometheus.io/port: {{ index . 1 | quote }}
{{- end }}
{{- end }}
