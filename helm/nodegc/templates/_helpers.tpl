{{/* Names and labels. */}}
{{- define "nodegc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nodegc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "nodegc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nodegc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nodegc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "nodegc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: garbage-collector
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "nodegc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nodegc.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "nodegc.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Host paths, from `runtime` unless hostPaths sets them. */}}
{{- define "nodegc.socketPath" -}}
{{- $defaults := dict "docker" "/var/run/docker.sock" "containerd" "/run/containerd/containerd.sock" "crio" "/var/run/crio/crio.sock" -}}
{{- default (get $defaults .Values.runtime) .Values.hostPaths.socket -}}
{{- end -}}

{{- define "nodegc.dataRoot" -}}
{{- $defaults := dict "docker" "/var/lib/docker" "containerd" "/var/lib/containerd" "crio" "/var/lib/containers/storage" -}}
{{- default (get $defaults .Values.runtime) .Values.hostPaths.dataRoot -}}
{{- end -}}

{{/*
The effective nodegc configuration as JSON (parse it with fromJson): .Values.config with
runtime.type and runtime.endpoint filled in from `runtime` and the socket when not set.
*/}}
{{- define "nodegc.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $runtime := default dict $config.runtime -}}
{{- if not $runtime.type -}}
{{- $_ := set $runtime "type" (ternary "docker" "cri" (eq .Values.runtime "docker")) -}}
{{- end -}}
{{- if not $runtime.endpoint -}}
{{- $_ := set $runtime "endpoint" (printf "unix://%s" (include "nodegc.socketPath" .)) -}}
{{- end -}}
{{- $_ := set $config "runtime" $runtime -}}
{{- toJson $config -}}
{{- end -}}

{{/* The port of config.metrics.address ("host:port"). */}}
{{- define "nodegc.metricsPort" -}}
{{- regexReplaceAll "^.*:([0-9]+)$" (toString .Values.config.metrics.address) "${1}" -}}
{{- end -}}

{{- define "nodegc.metricsEnabled" -}}
{{- if ne (toString .Values.config.metrics.enabled) "false" -}}true{{- end -}}
{{- end -}}

{{/*
TOML: config.toml from a map of sections (a fixed order, nodegc's) of scalar or list values.
Strings are JSON-quoted (JSON's escapes are valid in TOML basic strings), bools and integers bare,
lists in brackets. A null value leaves the key out, so nodegc uses its default.
*/}}
{{- define "nodegc.toml" -}}
{{- $sections := list "runtime" "images" "containers" "build_cache" "state" "metrics" "log" -}}
{{- range $name, $_ := . -}}
{{- if not (has $name $sections) -}}
{{- fail (printf "config.%s: not a section of nodegc's config.toml (sections: %s)" $name (join ", " $sections)) -}}
{{- end -}}
{{- end -}}
{{- $lines := list -}}
{{- range $name := $sections -}}
{{- $section := get $ $name -}}
{{- if $section -}}
{{- if not (kindIs "map" $section) -}}
{{- fail (printf "config.%s: must be a map of settings" $name) -}}
{{- end -}}
{{- if $lines -}}{{- $lines = append $lines "" -}}{{- end -}}
{{- $lines = append $lines (printf "[%s]" $name) -}}
{{- range $key, $value := $section -}}
{{- if not (kindIs "invalid" $value) -}}
{{- $text := include "nodegc.tomlValue" (dict "key" (printf "config.%s.%s" $name $key) "value" $value) -}}
{{- $lines = append $lines (printf "%s = %s" $key $text) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- join "\n" $lines -}}
{{- end -}}

{{- define "nodegc.tomlValue" -}}
{{- $v := .value -}}
{{- if kindIs "string" $v -}}
{{- toJson $v -}}
{{- else if kindIs "bool" $v -}}
{{- ternary "true" "false" $v -}}
{{- else if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) -}}
{{- if eq (float64 (int64 $v)) (float64 $v) -}}{{ int64 $v }}{{- else -}}{{ $v }}{{- end -}}
{{- else if kindIs "slice" $v -}}
[{{- range $i, $item := $v -}}{{- if $i }}, {{ end -}}{{- include "nodegc.tomlValue" (dict "key" $.key "value" $item) -}}{{- end -}}]
{{- else -}}
{{- fail (printf "%s: a %s cannot be written to config.toml; use a string, number, bool or list" .key (kindOf $v)) -}}
{{- end -}}
{{- end -}}

{{/* A Go duration string ("1h30m", "90s", "0") in seconds, as a float. */}}
{{- define "nodegc.seconds" -}}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1 -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $unit := trimPrefix $number . -}}
{{- $total = addf $total (mulf (float64 $number) (get $units $unit)) -}}
{{- end -}}
{{- $total -}}
{{- end -}}
