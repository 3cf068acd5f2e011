{{/*
The chart's name: nameOverride, else the chart's.
*/}}
{{- define "ingestion-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every object: fullnameOverride, else the release name,
followed by the chart's name unless the release name contains it. Object
names are DNS labels, hence 63 characters at most.
*/}}
{{- define "ingestion-service.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The chart label: name and version.
*/}}
{{- define "ingestion-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The image tag: image.tag, else the chart's appVersion.
*/}}
{{- define "ingestion-service.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "ingestion-service.labels" -}}
helm.sh/chart: {{ include "ingestion-service.chart" . }}
{{ include "ingestion-service.selectorLabels" . }}
app.kubernetes.io/version: {{ include "ingestion-service.tag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dota-data
{{- end }}

{{/*
Selector labels: the ones that never change for a release, which the
Deployment's selector (immutable), the Service, the PodDisruptionBudget and
the topology spread constraints select the pods by.
*/}}
{{- define "ingestion-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ingestion-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The Secret the pods read STEAM_API_KEY and KAFKA_SASL_PASSWORD from.
*/}}
{{- define "ingestion-service.secretName" -}}
{{- .Values.existingSecret | default (include "ingestion-service.fullname" .) }}
{{- end }}

{{/*
FLEET_GROUP: fleet.group, else the full name.
*/}}
{{- define "ingestion-service.fleetGroup" -}}
{{- .Values.fleet.group | default (include "ingestion-service.fullname" .) }}
{{- end }}

{{/*
FLEET_TOPIC: fleet.topic, else the group followed by "-leader".
*/}}
{{- define "ingestion-service.fleetTopic" -}}
{{- .Values.fleet.topic | default (printf "%s-leader" (include "ingestion-service.fleetGroup" .)) }}
{{- end }}

{{/*
The settings the chart's values own, by variable name, with the value that
sets each: env may not set them (two sources for one setting would disagree,
and API_PORT must match the container's ports). KAFKA_CLIENT_ID comes from
the pod's name, and the secrets from the Secret.
*/}}
{{- define "ingestion-service.ownedSettings" -}}
FLEET_GROUP: fleet.group
FLEET_TOPIC: fleet.topic
STANDBY_WINDOW: fleet.standbyWindow
FLEET_SESSION_TIMEOUT: fleet.sessionTimeout
KAFKA_BOOTSTRAP_SERVERS: kafka.bootstrapServers
KAFKA_PUBLISH_TOPIC: kafka.publishTopic
KAFKA_CREATE_TOPIC: kafka.createTopic
KAFKA_SECURITY_PROTOCOL: kafka.securityProtocol
KAFKA_SASL_MECHANISM: kafka.sasl.mechanism
KAFKA_SASL_USERNAME: kafka.sasl.username
KAFKA_SASL_PASSWORD: existingSecret or secret.kafkaSaslPassword
KAFKA_CLIENT_ID: "the pod's name (set by the Deployment)"
STEAM_API_KEY: existingSecret or secret.steamApiKey
SOURCE: source
SPOOL_DIR: spool.dir
SPOOL_MAX_BYTES: spool.maxBytes
API_HOST: "the chart (0.0.0.0: the kubelet probes the pod's address)"
API_PORT: api.port
API_PROBE_PORT: api.probePort
SHUTDOWN_TIMEOUT: shutdownTimeout
LOG_FORMAT: logFormat
LOG_LEVEL: logLevel
{{- end }}

{{/*
milliseconds turns a duration of the schema's form (whole numbers of h, m,
s and ms, such as 1m30s) into milliseconds; anything else counts as 0.
*/}}
{{- define "ingestion-service.milliseconds" -}}
{{- $units := dict "h" 3600000 "m" 60000 "s" 1000 "ms" 1 }}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+(ms|h|m|s)" (toString .) -1 }}
{{- $n := regexFind "^[0-9]+" . }}
{{- $total = add $total (mul (atoi $n) (get $units (trimPrefix $n .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
bytes turns a size of the schema's forms into bytes: SPOOL_MAX_BYTES's
(768MiB) and a Kubernetes quantity's (1Gi, 500M); anything else counts as 0.
*/}}
{{- define "ingestion-service.bytes" -}}
{{- $units := dict "" 1 "KiB" 1024 "MiB" 1048576 "GiB" 1073741824 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- $s := toString . }}
{{- $n := regexFind "^[0-9]+" $s }}
{{- $unit := trimPrefix $n $s }}
{{- if and $n (hasKey $units $unit) }}
{{- mul (atoi $n) (get $units $unit) }}
{{- else }}
{{- 0 }}
{{- end }}
{{- end }}

{{/*
envValue renders a value of env as a ConfigMap string. Numbers from a values
file arrive as floats: 200000 must not become 2e+05.
*/}}
{{- define "ingestion-service.envValue" -}}
{{- if kindIs "float64" . }}
{{- if eq . (float64 (int64 .)) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
validate refuses, with a message naming the values, the combinations the
schema cannot express and the service or the cluster would refuse later,
or worse, accept.
*/}}
{{- define "ingestion-service.validate" -}}
{{- $v := .Values }}
{{- if and (not $v.fleet.enabled) (ne (int $v.replicaCount) 1) }}
{{- fail (printf "fleet.enabled is false, so replicaCount must be 1 (got %v): without fleet mode every replica publishes every match" $v.replicaCount) }}
{{- end }}
{{- $shutdown := include "ingestion-service.milliseconds" $v.shutdownTimeout | atoi }}
{{- if le (mul (int $v.terminationGracePeriodSeconds) 1000) $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be above shutdownTimeout (%s): SIGKILL before the drain to Kafka ends loses what was in memory" $v.terminationGracePeriodSeconds $v.shutdownTimeout) }}
{{- end }}
{{- if $v.fleet.enabled }}
{{- $window := include "ingestion-service.milliseconds" $v.fleet.standbyWindow | atoi }}
{{- $session := include "ingestion-service.milliseconds" $v.fleet.sessionTimeout | atoi }}
{{- if le $window $session }}
{{- fail (printf "fleet.standbyWindow (%s) must be longer than fleet.sessionTimeout (%s): a promoted standby must still hold what the dead leader read" $v.fleet.standbyWindow $v.fleet.sessionTimeout) }}
{{- end }}
{{- end }}
{{- $spool := include "ingestion-service.bytes" $v.spool.maxBytes | atoi }}
{{- $volume := include "ingestion-service.bytes" $v.spool.sizeLimit | atoi }}
{{- if ge $spool $volume }}
{{- fail (printf "spool.maxBytes (%s) must be under spool.sizeLimit (%s): a volume past its limit gets the pod evicted" $v.spool.maxBytes $v.spool.sizeLimit) }}
{{- end }}
{{- if eq (int $v.api.port) (int $v.api.probePort) }}
{{- fail (printf "api.probePort (%v) must differ from api.port" $v.api.probePort) }}
{{- end }}
{{- if and $v.existingSecret $v.secret.create }}
{{- fail "set existingSecret or secret.create, not both" }}
{{- end }}
{{- if and $v.secret.create (not $v.secret.steamApiKey) (not $v.secret.kafkaSaslPassword) }}
{{- fail "secret.create is true, but secret.steamApiKey and secret.kafkaSaslPassword are both empty" }}
{{- end }}
{{- $sasl := hasPrefix "SASL_" $v.kafka.securityProtocol }}
{{- if and $sasl (not $v.kafka.sasl.username) }}
{{- fail (printf "kafka.sasl.username is required with kafka.securityProtocol %s" $v.kafka.securityProtocol) }}
{{- end }}
{{- if and $sasl $v.secret.create (not $v.secret.kafkaSaslPassword) }}
{{- fail (printf "secret.kafkaSaslPassword is required with kafka.securityProtocol %s" $v.kafka.securityProtocol) }}
{{- end }}
{{- if and (eq $v.source "steam-sequence") $v.secret.create (not $v.secret.steamApiKey) }}
{{- fail "secret.steamApiKey is required with source steam-sequence" }}
{{- end }}
{{- if and (eq $v.source "websocket") (not (get $v.env "OPENDOTA_STREAM_URL")) }}
{{- fail "source websocket needs env.OPENDOTA_STREAM_URL: the original service's default stream does not exist" }}
{{- end }}
{{- $owned := include "ingestion-service.ownedSettings" . | fromYaml }}
{{- range $name, $_ := $v.env }}
{{- if hasKey $owned $name }}
{{- fail (printf "env.%s: set it through %s, not env" $name (get $owned $name)) }}
{{- end }}
{{- end }}
{{- $pdb := $v.podDisruptionBudget }}
{{- if and $pdb.enabled (gt (int $v.replicaCount) 1) (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int $v.replicaCount)) }}
{{- fail (printf "podDisruptionBudget.minAvailable (%v) must be below replicaCount (%v), or no node could ever be drained" $pdb.minAvailable $v.replicaCount) }}
{{- end }}
{{- end }}
