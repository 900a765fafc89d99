{{/* Names, labels and the small decisions several templates share. */}}

{{- define "vsr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name alone when it already contains the chart name ("vsr"), else release-chart. */}}
{{- define "vsr.fullname" -}}
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

{{- define "vsr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vsr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vsr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vsr.labels" -}}
helm.sh/chart: {{ include "vsr.chart" . }}
{{ include "vsr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: router
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "vsr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vsr.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vsr.configMapName" -}}
{{- default (printf "%s-config" (include "vsr.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/* The CPU image, or the CUDA image when gpu.enabled; tags default to the chart's appVersion. */}}
{{- define "vsr.image" -}}
{{- if .Values.gpu.enabled }}
{{- $tag := default (printf "%s-cuda" .Chart.AppVersion) .Values.gpu.image.tag }}
{{- printf "%s:%s" .Values.gpu.image.repository $tag }}
{{- else }}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The router config file (schema: config/default.yaml, checked by `vsr validate-config`): config.inline
when given, else the chart's copy of config/default.yaml. On GPU the classifiers' `device` is set to
gpu.device; otherwise the file goes out verbatim (no YAML round trip, so comments survive).
*/}}
{{- define "vsr.routerConfig" -}}
{{- if .Values.config.inline }}
{{- $config := deepCopy .Values.config.inline }}
{{- if .Values.gpu.enabled }}{{- $_ := set $config "device" .Values.gpu.device }}{{- end }}
{{- toYaml $config }}
{{- else if .Values.gpu.enabled }}
{{- $config := .Files.Get "files/config.yaml" | fromYaml }}
{{- $_ := set $config "device" .Values.gpu.device }}
{{- toYaml $config }}
{{- else }}
{{- .Files.Get "files/config.yaml" }}
{{- end }}
{{- end }}

{{/* Worker processes: server.workers, else one per requested CPU ("2", 2, "1500m" -> 2; none: 1),
and 1 on a GPU unless set. */}}
{{- define "vsr.workers" -}}
{{- $workers := int (default 0 .Values.server.workers) }}
{{- if gt $workers 0 }}
{{- $workers }}
{{- else if .Values.gpu.enabled }}
{{- 1 }}
{{- else }}
{{- $cpu := toString (dig "requests" "cpu" "1" (default dict .Values.resources)) }}
{{- $milli := 0 }}
{{- if hasSuffix "m" $cpu }}
{{- $milli = int (trimSuffix "m" $cpu) }}
{{- else }}
{{- $milli = int (mulf (float64 $cpu) 1000) }}
{{- end }}
{{- max 1 (div (add $milli 999) 1000) }}
{{- end }}
{{- end }}
