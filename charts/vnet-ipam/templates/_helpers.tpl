{{/* Names, labels, the image, and the checks values.schema.json cannot express. */}}

{{- define "vnet-ipam.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name: the release name, plus the chart name unless it already has it. */}}
{{- define "vnet-ipam.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vnet-ipam.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "vnet-ipam.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vnet-ipam
{{- end -}}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "controller"). */}}
{{- define "vnet-ipam.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vnet-ipam.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vnet-ipam.componentLabels" -}}
{{ include "vnet-ipam.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vnet-ipam.controller.fullname" -}}
{{- printf "%s-controller" (include "vnet-ipam.fullname" .) -}}
{{- end -}}

{{- define "vnet-ipam.agent.fullname" -}}
{{- printf "%s-agent" (include "vnet-ipam.fullname" .) -}}
{{- end -}}

{{- define "vnet-ipam.mock.fullname" -}}
{{- printf "%s-azure-mock" (include "vnet-ipam.fullname" .) -}}
{{- end -}}

{{- define "vnet-ipam.controller.serviceAccountName" -}}
{{- default (include "vnet-ipam.controller.fullname" .) .Values.controller.serviceAccount.name -}}
{{- end -}}

{{- define "vnet-ipam.agent.serviceAccountName" -}}
{{- default (include "vnet-ipam.agent.fullname" .) .Values.agent.serviceAccount.name -}}
{{- end -}}

{{/* repository:tag or repository@digest. Include with (dict "repository" r "tag" t "digest" d "ctx" $). */}}
{{- define "vnet-ipam.imageRef" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (default .ctx.Chart.AppVersion .tag) -}}
{{- end -}}
{{- end -}}

{{- define "vnet-ipam.image" -}}
{{- include "vnet-ipam.imageRef" (dict "repository" .Values.image.repository "tag" .Values.image.tag "digest" .Values.image.digest "ctx" .) -}}
{{- end -}}

{{- define "vnet-ipam.mock.image" -}}
{{- if .Values.mock.image.repository -}}
{{- include "vnet-ipam.imageRef" (dict "repository" .Values.mock.image.repository "tag" (default .Values.image.tag .Values.mock.image.tag) "digest" "" "ctx" .) -}}
{{- else -}}
{{- include "vnet-ipam.image" . -}}
{{- end -}}
{{- end -}}

{{/*
Where the controller's azure.json comes from: "mock", "existingSecret", "config", "hostPath", or
"" when cloud is none. Fails with a message naming the values when they contradict each other.
*/}}
{{- define "vnet-ipam.azure.source" -}}
{{- $a := .Values.azure -}}
{{- if and (gt (int .Values.controller.replicas) 1) (not .Values.controller.leaderElection.enabled) -}}
{{- fail (printf "controller.replicas=%v needs controller.leaderElection.enabled=true: replicas without a leader would all allocate blocks" .Values.controller.replicas) -}}
{{- end -}}
{{- if ne .Values.cloud "azure" -}}
{{- if .Values.mock.enabled -}}
{{- fail "mock.enabled=true needs cloud=azure: the mock stands in for Azure, and with cloud=none the controller talks to no cloud" -}}
{{- end -}}
{{- else if and $a.existingSecret $a.config -}}
{{- fail "set at most one of azure.existingSecret and azure.config: both give the controller an azure.json" -}}
{{- else if .Values.mock.enabled -}}
{{- if or $a.existingSecret $a.config -}}
{{- fail "mock.enabled=true derives azure.json from mock.topology: unset azure.existingSecret and azure.config" -}}
{{- end -}}
{{- if not .Values.mock.topology.clients -}}
{{- fail "mock.topology.clients must name at least one client: the controller signs in to the mock as the first" -}}
{{- end -}}
mock
{{- else if $a.existingSecret -}}
existingSecret
{{- else if $a.config -}}
config
{{- else if $a.hostPath -}}
hostPath
{{- else -}}
{{- fail "cloud=azure needs an azure.json: set azure.existingSecret, azure.config or azure.hostPath (or mock.enabled=true, or cloud=none)" -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding azure.json (the chart's own, or azure.existingSecret). */}}
{{- define "vnet-ipam.azure.secretName" -}}
{{- if .Values.azure.existingSecret -}}
{{- .Values.azure.existingSecret -}}
{{- else -}}
{{- printf "%s-azure" (include "vnet-ipam.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The Kubernetes service-link variable prefix of the mock's Service: MY_RELEASE_VNET_IPAM_AZURE_MOCK. */}}
{{- define "vnet-ipam.mock.envPrefix" -}}
{{- include "vnet-ipam.mock.fullname" . | upper | replace "-" "_" | replace "." "_" -}}
{{- end -}}

{{/* Restricted pod security for the containers: no capability, read-only root, no escalation. */}}
{{- define "vnet-ipam.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Host veth prefix: agent.hostVethPrefix, or the one the NetworkPolicy engine finds pods by. */}}
{{- define "vnet-ipam.hostVethPrefix" -}}
{{- if .Values.agent.hostVethPrefix -}}
{{- .Values.agent.hostVethPrefix -}}
{{- else if eq .Values.networkPolicy.engine "calico" -}}
cali
{{- else -}}
vnet
{{- end -}}
{{- end -}}
