{{/*
Rules that tie values together, which values.schema.json cannot say. Each fails the render with
a message naming the values, so a mistake stops `helm install` instead of crash-looping nodegc
on every node. nodegc checks the same rules again at start.
*/}}
{{- define "nodegc.validate" -}}
{{- $images := default dict .Values.config.images -}}
{{- $high := 85 -}}
{{- if not (kindIs "invalid" $images.high_threshold_percent) }}{{ $high = int $images.high_threshold_percent }}{{ end -}}
{{- $low := 80 -}}
{{- if not (kindIs "invalid" $images.low_threshold_percent) }}{{ $low = int $images.low_threshold_percent }}{{ end -}}
{{- if ge $low $high -}}
{{- fail (printf "config.images.low_threshold_percent (%d) must be below config.images.high_threshold_percent (%d): image GC frees from the high threshold down to the low one" $low $high) -}}
{{- end -}}
{{- $inodeHigh := 95 -}}
{{- if not (kindIs "invalid" $images.inode_high_threshold_percent) }}{{ $inodeHigh = int $images.inode_high_threshold_percent }}{{ end -}}
{{- $inodeLow := 90 -}}
{{- if not (kindIs "invalid" $images.inode_low_threshold_percent) }}{{ $inodeLow = int $images.inode_low_threshold_percent }}{{ end -}}
{{- if ge $inodeLow $inodeHigh -}}
{{- fail (printf "config.images.inode_low_threshold_percent (%d) must be below config.images.inode_high_threshold_percent (%d): image GC frees inodes from the inode high threshold down to the inode low one" $inodeLow $inodeHigh) -}}
{{- end -}}

{{- range $section := list "images" "containers" -}}
{{- $values := default dict (get $.Values.config $section) -}}
{{- $minText := get $values "minimum_age" | default (ternary "2m" "0s" (eq $section "images")) -}}
{{- $min := include "nodegc.seconds" $minText | float64 -}}
{{- $max := include "nodegc.seconds" (get $values "maximum_age" | default "0s") | float64 -}}
{{- if and (gt $max 0.0) (le $max $min) -}}
{{- fail (printf "config.%s.maximum_age (%s) must be above config.%s.minimum_age (%s), or 0s to turn it off" $section (get $values "maximum_age") $section $minText) -}}
{{- end -}}
{{- if hasKey $values "gc_period" -}}
{{- if le (include "nodegc.seconds" (get $values "gc_period") | float64) 0.0 -}}
{{- fail (printf "config.%s.gc_period (%s) must be above 0s" $section (get $values "gc_period")) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- $runtime := default dict .Values.config.runtime -}}
{{- if hasKey $runtime "timeout" -}}
{{- if le (include "nodegc.seconds" $runtime.timeout | float64) 0.0 -}}
{{- fail (printf "config.runtime.timeout (%s) must be above 0s" $runtime.timeout) -}}
{{- end -}}
{{- end -}}

{{- if include "nodegc.metricsEnabled" . -}}
{{- $port := include "nodegc.metricsPort" . | int -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "config.metrics.address (%s): the port must be from 1 to 65535" .Values.config.metrics.address) -}}
{{- end -}}
{{- $host := regexReplaceAll ":[0-9]+$" (toString .Values.config.metrics.address) "" -}}
{{- if has $host (list "127.0.0.1" "localhost" "[::1]") -}}
{{- fail (printf "config.metrics.address (%s) listens on loopback only: the kubelet's probes and Prometheus reach the pod on its IP; use 0.0.0.0:PORT (the pod's own network namespace)" .Values.config.metrics.address) -}}
{{- end -}}
{{- else -}}
{{- if or .Values.serviceMonitor.enabled .Values.prometheusRule.enabled -}}
{{- fail "serviceMonitor.enabled and prometheusRule.enabled need config.metrics.enabled: true (there is nothing to scrape)" -}}
{{- end -}}
{{- end -}}

{{- $state := default dict .Values.config.state -}}
{{- if and (hasKey $state "directory") (not (isAbs (toString $state.directory))) -}}
{{- fail (printf "config.state.directory (%s) must be an absolute path (hostPaths.stateDir is mounted there)" $state.directory) -}}
{{- end -}}
{{- end -}}
