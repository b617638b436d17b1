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
{{/*
Every secret the pods get, one entry per STREAMAPP_* variable: where its values
live (`path` under .Values), which field holds an inline value, and whether
STREAMAPP_ENV=prod requires it. The pods read them as files (STREAMAPP_SECRETS_DIR),
never as environment variables.
*/}}
{{- define "streamapp.secretSpecs" -}}
- {env: STREAMAPP_DATABASE_URL, path: [database], field: url, prod: true}
- {env: STREAMAPP_SALESFORCE_SECRET, path: [salesforce], field: secret, prod: true}
- {env: STREAMAPP_ADMIN_TOKEN, path: [admin], field: token, prod: true}
- {env: STREAMAPP_READ_TOKEN, path: [read], field: token, prod: true}
- {env: STREAMAPP_TASKS_SECRET, path: [tasks], field: secret, prod: true}
- {env: STREAMAPP_ASSISTANCE_BOT_TOKEN, path: [assistance], field: botToken, prod: true}
- {env: STREAMAPP_CARTS_JWT_SECRET, path: [carts], field: jwtSecret, prod: true}
- {env: STREAMAPP_BROKER_SASL_PASSWORD, path: [broker, sasl], field: password, prod: false}
{{- end }}

{{/*
The specs resolved against the values, as JSON: for each, whether it is set,
the Secret and key it comes from, and the inline value when the chart's own
Secret holds it (`owned`).
*/}}
{{- define "streamapp.secrets" -}}
{{- $root := . }}
{{- $out := list }}
{{- range $spec := include "streamapp.secretSpecs" . | fromYamlArray }}
{{- $section := $root.Values }}
{{- range $spec.path }}{{ $section = index $section . | default dict }}{{ end }}
{{- $inline := index $section $spec.field | default "" | toString }}
{{- $existing := $section.existingSecret | default "" }}
{{- $owned := and (not $existing) (ne $inline "") }}
{{- $out = append $out (dict
    "env" $spec.env
    "prod" $spec.prod
    "values" (join "." $spec.path)
    "field" $spec.field
    "set" (or (ne $existing "") $owned)
    "owned" $owned
    "inline" $inline
    "secretName" ($existing | default (include "streamapp.secretName" $root))
    "key" $section.existingSecretKey) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* True (non-empty) when the chart writes a Secret of its own (some value is inline). */}}
{{- define "streamapp.ownsSecret" -}}
{{- range include "streamapp.secrets" . | fromJsonArray }}{{ if .owned }}true{{ end }}{{ end }}
{{- end }}

{{/* True (non-empty) when the secret for `env` is configured. Called with (list $ "STREAMAPP_X"). */}}
{{- define "streamapp.secretSet" -}}
{{- $env := index . 1 }}
{{- range include "streamapp.secrets" (index . 0) | fromJsonArray }}{{ if and (eq .env $env) .set }}true{{ end }}{{ end }}
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

{{/* Where the broker's TLS files are mounted (broker.tls.existingSecret). */}}
{{- define "streamapp.brokerTlsPath" -}}/etc/streamapp/broker-tls{{- end }}

{{/*
The env entries every streamapp container shares (workers, ingest, init
containers): the broker and how to reach it, where the secret files are, then
extraEnv (last, so it can add what the chart does not set). The secrets
themselves are files, see streamapp.secretVolumes.
*/}}
{{- define "streamapp.env" -}}
{{- $root := . -}}
- name: STREAMAPP_BROKER_URL
  value: {{ $root.Values.broker.url | quote }}
- name: STREAMAPP_SECRETS_DIR
  value: {{ $root.Values.secretsMountPath | quote }}
- name: STREAMAPP_BROKER_SECURITY_PROTOCOL
  value: {{ $root.Values.broker.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $root.Values.broker.securityProtocol }}
- name: STREAMAPP_BROKER_SASL_MECHANISM
  value: {{ $root.Values.broker.sasl.mechanism | quote }}
{{- with $root.Values.broker.sasl.username }}
- name: STREAMAPP_BROKER_SASL_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.broker.tls }}
{{- if .existingSecret }}
{{- if .caKey }}
- name: STREAMAPP_BROKER_SSL_CAFILE
  value: {{ printf "%s/%s" (include "streamapp.brokerTlsPath" $root) .caKey | quote }}
{{- end }}
{{- if .certKey }}
- name: STREAMAPP_BROKER_SSL_CERTFILE
  value: {{ printf "%s/%s" (include "streamapp.brokerTlsPath" $root) .certKey | quote }}
- name: STREAMAPP_BROKER_SSL_KEYFILE
  value: {{ printf "%s/%s" (include "streamapp.brokerTlsPath" $root) .keyKey | quote }}
{{- end }}
{{- end }}
{{- if not .checkHostname }}
- name: STREAMAPP_BROKER_SSL_CHECK_HOSTNAME
  value: "false"
{{- end }}
{{- end }}
{{- with $root.Values.carts.audience }}
- name: STREAMAPP_CARTS_JWT_AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The secrets as files: one projected volume, each configured secret at
<secretsMountPath>/<STREAMAPP_VARIABLE> (what STREAMAPP_SECRETS_DIR reads), from
the chart's Secret or yours; and the broker's TLS files when configured.
*/}}
{{- define "streamapp.secretVolumes" -}}
- name: secrets
  projected:
    # Readable by the pod's group (fsGroup), not by others.
    defaultMode: 0440
    sources:
    {{- range include "streamapp.secrets" . | fromJsonArray }}
    {{- if .set }}
      - secret:
          name: {{ .secretName }}
          items:
            - key: {{ .key }}
              path: {{ .env }}
    {{- end }}
    {{- end }}
{{- with .Values.broker.tls.existingSecret }}
- name: broker-tls
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "streamapp.secretMounts" -}}
- name: secrets
  mountPath: {{ .Values.secretsMountPath }}
  readOnly: true
{{- if .Values.broker.tls.existingSecret }}
- name: broker-tls
  mountPath: {{ include "streamapp.brokerTlsPath" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Init containers of every streamapp pod: create the app's topics (`streamapp topics
--create`, the list comes from the code) and apply the migrations (`streamapp
migrate`). Both load the full settings first, so a missing or malformed secret
stops the pod here, with one line naming it, before anything serves.
*/}}
{{- define "streamapp.initContainers" -}}
{{- $root := . }}
{{- range $step := list (dict "name" "topics" "args" (list "topics" "--create") "on" $root.Values.topics.create) (dict "name" "migrate" "args" (list "migrate") "on" $root.Values.migrate.initContainer) }}
{{- if $step.on }}
- name: {{ $step.name }}
  image: {{ include "streamapp.image" $root | quote }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args: {{ toJson $step.args }}
  envFrom:
    {{- include "streamapp.envFrom" $root | nindent 4 }}
  env:
    {{- include "streamapp.env" $root | nindent 4 }}
  resources:
    requests:
      cpu: 50m
      memory: 128Mi
    limits:
      memory: 384Mi
  {{- with $root.Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    {{- include "streamapp.secretMounts" $root | nindent 4 }}
    - name: data
      mountPath: /var/lib/streamapp
    - name: tmp
      mountPath: /tmp
{{- end }}
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
{{- $secretEnvs := list }}
{{- range include "streamapp.secrets" . | fromJsonArray }}{{ $secretEnvs = append $secretEnvs .env }}{{ end }}
{{- range $key, $_ := .Values.config }}
{{- if not (hasPrefix "STREAMAPP_" $key) }}
{{- fail (printf "config.%s: only STREAMAPP_* settings belong in config (use extraEnv for others)" $key) }}
{{- end }}
{{- if or (has $key $secretEnvs) (has $key (list "STREAMAPP_ASSISTANCE_ROUTES" "STREAMAPP_BROKER_SSL_KEY_PASSWORD")) }}
{{- fail (printf "config.%s is a secret: it would land in a ConfigMap (see the secret values in values.yaml, or extraEnv with a secretKeyRef)" $key) }}
{{- end }}
{{- end }}
{{- if and (not .Values.carts.existingSecret) .Values.carts.jwtSecret (lt (len (toString .Values.carts.jwtSecret)) 32) }}
{{- fail "carts.jwtSecret must be at least 32 bytes (an HS256 key; the workers would refuse to start)" }}
{{- end }}
{{- /* What STREAMAPP_ENV=prod refuses to start without: caught here, not in a crash loop. */}}
{{- if eq (index .Values.config "STREAMAPP_ENV" | default "dev" | toString) "prod" }}
{{- $missing := list }}
{{- range include "streamapp.secrets" . | fromJsonArray }}
{{- if and .prod (not .set) }}
{{- $missing = append $missing (printf "%s (%s.%s or %s.existingSecret)" .env .values .field .values) }}
{{- end }}
{{- end }}
{{- if not (or .Values.carts.audience (index .Values.config "STREAMAPP_CARTS_JWT_AUDIENCE")) }}
{{- $missing = append $missing "STREAMAPP_CARTS_JWT_AUDIENCE (carts.audience)" }}
{{- end }}
{{- if $missing }}
{{- fail (printf "config.STREAMAPP_ENV is prod, which refuses to start without: %s" (join ", " $missing)) }}
{{- end }}
{{- end }}
{{- $broker := .Values.broker }}
{{- if not (has $broker.securityProtocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) }}
{{- fail (printf "broker.securityProtocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, not %v" $broker.securityProtocol) }}
{{- end }}
{{- if and (hasPrefix "SASL_" $broker.securityProtocol) (has $broker.sasl.mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) }}
{{- if not (and $broker.sasl.username (include "streamapp.secretSet" (list . "STREAMAPP_BROKER_SASL_PASSWORD"))) }}
{{- fail (printf "broker.securityProtocol %s with %s needs broker.sasl.username and broker.sasl.password (or broker.sasl.existingSecret)" $broker.securityProtocol $broker.sasl.mechanism) }}
{{- end }}
{{- end }}
{{- if and $broker.tls.existingSecret (ne (empty $broker.tls.certKey) (empty $broker.tls.keyKey)) }}
{{- fail "broker.tls.certKey and broker.tls.keyKey go together (a client certificate and its key)" }}
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
