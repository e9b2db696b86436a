{{/* Chart name, truncated to a DNS label. */}}
{{- define "agentenv.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: <release> if it already contains the chart name, else <release>-<chart>. */}}
{{- define "agentenv.fullname" -}}
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

{{- define "agentenv.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of a release (a Deployment's selector is immutable). */}}
{{- define "agentenv.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentenv.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Standard labels on every object of the chart. */}}
{{- define "agentenv.labels" -}}
helm.sh/chart: {{ include "agentenv.chart" . }}
{{ include "agentenv.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: agentenv
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "agentenv.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agentenv.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest] for an image block, falling back to the chart's appVersion for the tag. */}}
{{- define "agentenv.imageRef" -}}
{{- $image := index . 0 }}{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "agentenv.image" -}}
{{- include "agentenv.imageRef" (list .Values.image .) }}
{{- end }}

{{/* The sidecar image: its own block when a repository is set, else the operator's image. */}}
{{- define "agentenv.sidecarImage" -}}
{{- if .Values.sidecar.image.repository }}
{{- include "agentenv.imageRef" (list .Values.sidecar.image .) }}
{{- else }}
{{- include "agentenv.image" . }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the API key, or "" when none is configured. */}}
{{- define "agentenv.apiKeySecretName" -}}
{{- if .Values.apiKey.existingSecret }}
{{- .Values.apiKey.existingSecret }}
{{- else if .Values.apiKey.value }}
{{- printf "%s-api-key" (include "agentenv.fullname" .) }}
{{- end }}
{{- end }}

{{- define "agentenv.apiKeySecretKey" -}}
{{- if .Values.apiKey.existingSecret }}{{ .Values.apiKey.existingSecretKey }}{{ else }}api-key{{ end }}
{{- end }}

{{/*
The operator's RBAC rules from files/operator-rbac-rules.yaml (shared with the local test cluster),
minus Leases: leader election only needs them in the release namespace, so they are granted there by
a Role (templates/leader-election-rbac.yaml) instead of cluster-wide.
*/}}
{{- define "agentenv.rbacRules" -}}
{{- $rules := list }}
{{- range (.Files.Get "files/operator-rbac-rules.yaml" | fromYamlArray) }}
{{- if not (has "coordination.k8s.io" .apiGroups) }}
{{- $rules = append $rules . }}
{{- end }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/* The leader Lease's name: leaderElection.id, else the release's full name (one leader per release). */}}
{{- define "agentenv.leaseName" -}}
{{- default (include "agentenv.fullname" .) .Values.leaderElection.id -}}
{{- end }}

{{/* A list of {name: …} objects as comma-separated names. */}}
{{- define "agentenv.names" -}}
{{- $names := list -}}
{{- range . }}{{ $names = append $names .name }}{{ end -}}
{{- join "," $names -}}
{{- end }}
