{{/* vim: set filetype=mustache: */}}

{{/* Chart name. */}}
{{- define "pattern-tts.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Resource name prefix: the release name when it contains the chart name (release `pattern-tts`
gives `pattern-tts`), else `<release>-<chart>`. Names built on it add a suffix of up to 8
characters (`-service`, `-models`), so it is cut to 55.
*/}}
{{- define "pattern-tts.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pattern-tts.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Service name: `pattern-tts-service` for the default release name. */}}
{{- define "pattern-tts.serviceName" -}}
{{- printf "%s-service" (include "pattern-tts.fullname" .) -}}
{{- end -}}

{{/* Weights PVC name: `pattern-tts-models` by default, or persistence.existingClaim. */}}
{{- define "pattern-tts.pvcName" -}}
{{- if .Values.persistence.existingClaim -}}
{{- .Values.persistence.existingClaim -}}
{{- else -}}
{{- printf "%s-models" (include "pattern-tts.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "pattern-tts.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pattern-tts.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pattern-tts.labels" -}}
helm.sh/chart: {{ include "pattern-tts.chart" . }}
{{ include "pattern-tts.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pattern-tts
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations block content (may be empty). */}}
{{- define "pattern-tts.annotations" -}}
{{- $ann := merge (dict) (.extra | default dict) (.context.Values.commonAnnotations | default dict) -}}
{{- if $ann -}}
annotations:
  {{- toYaml $ann | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "pattern-tts.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pattern-tts.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image reference: registry/repository, then @digest or :tag (default appVersion + tagSuffix). */}}
{{- define "pattern-tts.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- $tag := .Values.image.tag | default (printf "%s%s" .Chart.AppVersion .Values.image.tagSuffix) -}}
{{- printf "%s:%s" $repo ($tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by every container: file locations, ports, logging. */}}
{{- define "pattern-tts.commonEnv" -}}
- name: HOME
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
- name: PATTERN_TTS_CACHE_DIR
  value: /tmp/pattern-tts
- name: PATTERN_TTS_WEIGHTS_DIR
  value: {{ .Values.persistence.mountPath | quote }}
- name: PATTERN_TTS_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: PATTERN_TTS_TRITON_HTTP_PORT
  value: {{ .Values.triton.ports.http | quote }}
- name: PATTERN_TTS_TRITON_GRPC_PORT
  value: {{ .Values.triton.ports.grpc | quote }}
- name: PATTERN_TTS_TRITON_METRICS_PORT
  value: {{ .Values.triton.ports.metrics | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Environment of the two serving containers (not the weights init container). */}}
{{- define "pattern-tts.servingEnv" -}}
{{ include "pattern-tts.commonEnv" . }}
- name: PATTERN_TTS_STREAM_PRIORITY
  value: {{ .Values.triton.streamPriority | quote }}
- name: PATTERN_TTS_DEVICE
  value: {{ .Values.triton.device | quote }}
{{- if .Values.hfHubOffline }}
- name: HF_HUB_OFFLINE
  value: "1"
{{- end }}
{{- end -}}

{{/* An httpGet probe from a values block (enabled, timings), a path and a port. */}}
{{- define "pattern-tts.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
successThreshold: {{ .probe.successThreshold }}
{{- end -}}

{{/* Keep serving for preStopSleepSeconds once the pod is being deleted, while the Service stops routing
to it; then SIGTERM, and the container lets its requests in flight finish. Empty when 0. The gateway's
always; Triton's only when it is not a sidecar (a sidecar is stopped after the gateway has exited). */}}
{{- define "pattern-tts.lifecycle" -}}
{{- if .Values.preStopSleepSeconds -}}
lifecycle:
  preStop:
    exec:
      command: ["sleep", {{ .Values.preStopSleepSeconds | quote }}]
{{- end -}}
{{- end -}}

{{/* The Triton container: a native sidecar (an init container with restartPolicy Always) when
triton.sidecar is on, else an ordinary container next to the gateway. */}}
{{- define "pattern-tts.tritonContainer" -}}
- name: triton
  {{- if .Values.triton.sidecar }}
  restartPolicy: Always
  {{- end }}
  image: {{ include "pattern-tts.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    {{- toYaml .Values.triton.command | nindent 4 }}
  {{- with .Values.triton.args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: triton-http
      containerPort: {{ .Values.triton.ports.http }}
      protocol: TCP
    - name: triton-grpc
      containerPort: {{ .Values.triton.ports.grpc }}
      protocol: TCP
    - name: metrics
      containerPort: {{ .Values.triton.ports.metrics }}
      protocol: TCP
  env:
    {{- include "pattern-tts.servingEnv" . | nindent 4 }}
    - name: PATTERN_TTS_TRITON_HOST
      value: {{ .Values.triton.bindAddress | quote }}
    - name: PATTERN_TTS_INSTANCE_COUNT
      value: {{ .Values.triton.instanceCount | quote }}
    - name: PATTERN_TTS_MAX_BATCH_SIZE
      value: {{ .Values.triton.maxBatchSize | quote }}
    - name: PATTERN_TTS_MAX_QUEUE_DELAY_US
      value: {{ .Values.triton.maxQueueDelayUs | quote }}
    - name: PATTERN_TTS_THREADS
      value: {{ .Values.triton.threads | quote }}
    - name: PATTERN_TTS_TRITON_STARTUP_TIMEOUT_S
      value: {{ .Values.triton.startupTimeoutSeconds | quote }}
    {{- with .Values.triton.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if .Values.triton.startupProbe.enabled }}
  startupProbe:
    {{- include "pattern-tts.httpProbe" (dict "probe" .Values.triton.startupProbe "path" "/v2/health/ready" "port" "triton-http") | nindent 4 }}
  {{- end }}
  {{- if .Values.triton.livenessProbe.enabled }}
  livenessProbe:
    {{- include "pattern-tts.httpProbe" (dict "probe" .Values.triton.livenessProbe "path" "/v2/health/live" "port" "triton-http") | nindent 4 }}
  {{- end }}
  {{- if .Values.triton.readinessProbe.enabled }}
  readinessProbe:
    {{- include "pattern-tts.httpProbe" (dict "probe" .Values.triton.readinessProbe "path" "/v2/health/ready" "port" "triton-http") | nindent 4 }}
  {{- end }}
  {{- if not .Values.triton.sidecar }}
  {{- with include "pattern-tts.lifecycle" . }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.triton.resources | nindent 4 }}
  volumeMounts:
    - name: models
      mountPath: {{ .Values.persistence.mountPath }}
      {{- with .Values.persistence.subPath }}
      subPath: {{ . }}
      {{- end }}
      readOnly: true
    - name: tmp-triton
      mountPath: /tmp
    - name: dshm
      mountPath: /dev/shm
{{- end -}}
