{{/*
Shared helpers. A "service" below is one of the six credmesh services; most helpers
take (dict "root" $ "name" "<service>").
*/}}

{{- define "credmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "credmesh.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "credmesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The services in a fixed order, and what the chart knows about each: the full gRPC
service name (health checks), the key files it reads, whether it uses Redis.
*/}}
{{- define "credmesh.serviceOrder" -}}
identity license entcode certificate inspection verify
{{- end }}

{{- define "credmesh.catalog" -}}
identity:
  grpcService: credmesh.identity.v1.IdentityService
  keys: [anchor, token]
  redis: false
  partners: true
license:
  grpcService: credmesh.license.v1.LicenseService
  keys: [signing, client]
  redis: false
  partners: false
entcode:
  grpcService: credmesh.entcode.v1.EnterpriseCodeService
  keys: [signing, client]
  redis: true
  partners: false
certificate:
  grpcService: credmesh.certificate.v1.CertificateService
  keys: [signing, client]
  redis: false
  partners: false
inspection:
  grpcService: credmesh.inspection.v1.InspectionService
  keys: [signing, client]
  redis: false
  partners: false
verify:
  grpcService: credmesh.verify.v1.VerifyService
  keys: [client]
  redis: true
  partners: true
{{- end }}

{{/* Key name in values -> file name in the Secret and the variable pointing at it. */}}
{{- define "credmesh.keyFiles" -}}
anchor: {file: anchor.pem, env: CREDMESH_ANCHOR_KEY_FILE}
token: {file: token.pem, env: CREDMESH_TOKEN_KEY_FILE}
previousToken: {file: previous-token.pem, env: CREDMESH_PREVIOUS_TOKEN_KEY_FILE}
signing: {file: signing.pem, env: CREDMESH_SIGNING_KEY_FILE}
client: {file: client.pem, env: CREDMESH_CLIENT_KEY_FILE}
{{- end }}

{{/* The enabled services, space separated, in order. */}}
{{- define "credmesh.enabledServices" -}}
{{- $out := list }}
{{- range $name := splitList " " (include "credmesh.serviceOrder" .) }}
{{- if (index $.Values.services $name).enabled }}
{{- $out = append $out $name }}
{{- end }}
{{- end }}
{{- join " " $out }}
{{- end }}

{{/* One service's settings: values.defaults overlaid with services.<name>. */}}
{{- define "credmesh.settings" -}}
{{- include "credmesh.deepMerge" (dict "base" .root.Values.defaults "over" (index .root.Values.services .name)) }}
{{- end }}

{{/*
Deep merge where the overlay always wins, false and 0 included (sprig's merge functions
skip "empty" values, so `podDisruptionBudget.enabled: false` would be lost).
*/}}
{{- define "credmesh.deepMerge" -}}
{{- $out := deepCopy .base }}
{{- range $k, $v := .over }}
{{- $b := index $out $k }}
{{- if and (kindIs "map" $v) (kindIs "map" $b) }}
{{- $_ := set $out $k (include "credmesh.deepMerge" (dict "base" $b "over" $v) | fromYaml) }}
{{- else }}
{{- $_ := set $out $k $v }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{- define "credmesh.objectName" -}}
{{- printf "%s-%s" (include "credmesh.fullname" .root) .name }}
{{- end }}

{{- define "credmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "credmesh.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "credmesh.labels" -}}
helm.sh/chart: {{ include "credmesh.chart" .root }}
{{ include "credmesh.selectorLabels" . }}
app.kubernetes.io/part-of: credmesh
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
credmesh.io/region: {{ .root.Values.region.code }}
{{- end }}

{{- define "credmesh.image" -}}
{{- $img := .Values.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{- define "credmesh.testImage" -}}
{{- $img := .Values.tests.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository $img.tag }}
{{- end }}
{{- end }}

{{/* Hardened security contexts: every pod and container of the chart uses these. */}}
{{- define "credmesh.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "credmesh.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Secret names and keys. */}}
{{- define "credmesh.keysSecretName" -}}
{{- $svc := index .root.Values.services .name }}
{{- default (printf "%s-keys" (include "credmesh.objectName" .)) $svc.keys.existingSecret }}
{{- end }}

{{- define "credmesh.databaseSecretName" -}}
{{- default (printf "%s-database" (include "credmesh.objectName" .)) .root.Values.postgresql.existingSecret }}
{{- end }}

{{- define "credmesh.databaseSecretKey" -}}
{{- printf "%s-database-url" .name }}
{{- end }}

{{- define "credmesh.databaseUrl" -}}
{{- $pg := .root.Values.postgresql }}
{{- $url := index ($pg.urls | default dict) .name | default "" }}
{{- if $url }}
{{- $url }}
{{- else }}
{{- $auth := urlquery $pg.username }}
{{- if $pg.password }}{{ $auth = printf "%s:%s" $auth (urlquery $pg.password) }}{{ end }}
{{- printf "postgres://%s@%s:%v/%s%s?sslmode=%s" $auth $pg.host $pg.port $pg.databasePrefix .name $pg.sslMode }}
{{- end }}
{{- end }}

{{- define "credmesh.redisSecretName" -}}
{{- default (printf "%s-redis" (include "credmesh.fullname" .)) .Values.redis.existingSecret }}
{{- end }}

{{- define "credmesh.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.existingSecretKey }}{{ else }}redis-url{{ end }}
{{- end }}

{{- define "credmesh.redisConfigured" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{/* Does this service get REDIS_URL? */}}
{{- define "credmesh.usesRedis" -}}
{{- $cat := index (include "credmesh.catalog" .root | fromYaml) .name }}
{{- if and $cat.redis (include "credmesh.redisConfigured" .root) }}true{{ end }}
{{- end }}

{{- define "credmesh.partnersConfigured" -}}
{{- if .Values.region.partners }}true{{ end }}
{{- end }}

{{- define "credmesh.usesPartners" -}}
{{- $cat := index (include "credmesh.catalog" .root | fromYaml) .name }}
{{- if and $cat.partners (include "credmesh.partnersConfigured" .root) }}true{{ end }}
{{- end }}

{{/* Does this service get CREDMESH_PARTNER_CA_FILE (verify, with a bundle set)? */}}
{{- define "credmesh.usesPartnerCa" -}}
{{- $ca := .root.Values.region.partnerCa }}
{{- if and (eq .name "verify") (or $ca.pem $ca.existingConfigMap) }}true{{ end }}
{{- end }}

{{/* The ConfigMap holding the partner CA bundle. */}}
{{- define "credmesh.partnerCaConfigMap" -}}
{{- .Values.region.partnerCa.existingConfigMap | default (printf "%s-partner-ca" (include "credmesh.fullname" .)) }}
{{- end }}

{{/*
In-process TLS (values `tls`): the scheme of the URLs the services call each other by,
where the Secret is mounted, and the environment that points at its files.
*/}}
{{- define "credmesh.scheme" -}}
{{- ternary "https" "http" (.Values.tls.enabled | default false) }}
{{- end }}

{{- define "credmesh.tlsDir" -}}
/etc/credmesh/tls
{{- end }}

{{- define "credmesh.tlsEnv" -}}
{{- $dir := include "credmesh.tlsDir" . }}
CREDMESH_TLS_CERT_FILE: {{ $dir }}/tls.crt
CREDMESH_TLS_KEY_FILE: {{ $dir }}/tls.key
CREDMESH_TLS_CA_FILE: {{ $dir }}/ca.crt
{{- if .Values.tls.mutual }}
CREDMESH_TLS_CLIENT_CA_FILE: {{ $dir }}/ca.crt
{{- end }}
{{- end }}

{{- define "credmesh.identityUrl" -}}
{{- if .Values.services.identity.enabled }}
{{- printf "%s://%s-identity:%v" (include "credmesh.scheme" .) (include "credmesh.fullname" .) .Values.ports.grpc }}
{{- else }}
{{- .Values.externalIdentity.url }}
{{- end }}
{{- end }}

{{/*
Checks across values that the schema cannot express; each failure names the value to
change.
*/}}
{{- define "credmesh.validate" -}}
{{- $v := .Values }}
{{- if and $v.tls.enabled (not $v.tls.existingSecret) }}
{{- fail "tls.enabled is true but tls.existingSecret is empty: name the Secret with tls.crt, tls.key and ca.crt (cert-manager's layout) whose certificate names every service's Service (<fullname>-<service>)" }}
{{- end }}
{{- if and $v.tls.mutual (not $v.tls.enabled) }}
{{- fail "tls.mutual is true but tls.enabled is false: mutual TLS needs tls.enabled and tls.existingSecret" }}
{{- end }}
{{- range $p := $v.region.partners }}
{{- if eq $p.code $v.region.code }}
{{- fail (printf "region.partners: %s is this deployment's own region (region.code); list only partner regions" $p.code) }}
{{- end }}
{{- end }}
{{- $enabled := include "credmesh.enabledServices" . }}
{{- if and $enabled (not $v.services.identity.enabled) (not $v.externalIdentity.url) }}
{{- fail "services.identity.enabled is false: set externalIdentity.url to the identity service the other services use (http://host:port)" }}
{{- end }}
{{- range $name := splitList " " $enabled }}
{{- if $name }}
{{- $svc := index $v.services $name }}
{{- range $dep := $svc.dependsOn }}
{{- if eq $dep $name }}
{{- fail (printf "services.%s.dependsOn lists the service itself" $name) }}
{{- end }}
{{- end }}
{{- if and (not $svc.keys.existingSecret) (not $v.keys.generate) }}
{{- $cat := index (include "credmesh.catalog" $ | fromYaml) $name }}
{{- range $k := $cat.keys }}
{{- if not (index $svc.keys $k) }}
{{- fail (printf "services.%s.keys.%s is empty, services.%s.keys.existingSecret is not set and keys.generate is false: give the PEM, a Secret, or turn generation on" $name $k $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The non-secret environment of one service (its ConfigMap's data), as YAML. */}}
{{- define "credmesh.env" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $ctx := . }}
{{- $keyFiles := include "credmesh.keyFiles" $root | fromYaml }}
{{- $svc := index $root.Values.services $name }}
{{- $cat := index (include "credmesh.catalog" $root | fromYaml) $name }}
{{- $env := dict
  "CREDMESH_REGION" $root.Values.region.code
  "CREDMESH_GRPC_ADDR" (printf "0.0.0.0:%d" ($root.Values.ports.grpc | int))
  "CREDMESH_HTTP_ADDR" (printf "0.0.0.0:%d" ($root.Values.ports.http | int))
  "CREDMESH_MIGRATE" (ternary "false" "true" $root.Values.migrations.enabled)
  "CREDMESH_LOG_FORMAT" $root.Values.config.logFormat
  "RUST_LOG" $root.Values.config.logLevel
  "CREDMESH_MAX_MESSAGE_BYTES" ($root.Values.config.maxMessageBytes | int64 | toString)
  "CREDMESH_REQUEST_TIMEOUT_MS" ($root.Values.config.requestTimeoutMs | int64 | toString)
  "CREDMESH_MAX_CONCURRENT_REQUESTS" ($root.Values.config.maxConcurrentRequests | int64 | toString)
}}
{{- $rate := (include "credmesh.settings" $ctx | fromYaml).rateLimit }}
{{- $_ := set $env "CREDMESH_RATE_LIMIT_PER_SECOND" ($rate.perSecond | toString) }}
{{- $_ := set $env "CREDMESH_RATE_LIMIT_BURST" ($rate.burst | int64 | toString) }}
{{- with $root.Values.region.publicUrl }}{{ $_ := set $env "CREDMESH_PUBLIC_URL" . }}{{ end }}
{{- with $root.Values.otlp.endpoint }}{{ $_ := set $env "OTEL_EXPORTER_OTLP_ENDPOINT" . }}{{ end }}
{{- range $k := $cat.keys }}
{{- $_ := set $env (index $keyFiles $k).env (printf "/etc/credmesh/keys/%s" (index $keyFiles $k).file) }}
{{- end }}
{{- if eq $name "identity" }}
{{- if or $svc.keys.previousToken $svc.keys.withPreviousToken }}
{{- $_ := set $env "CREDMESH_PREVIOUS_TOKEN_KEY_FILE" "/etc/credmesh/keys/previous-token.pem" }}
{{- end }}
{{- $_ := set $env "CREDMESH_TOKEN_TTL_SECONDS" ($svc.tokenTtlSeconds | int64 | toString) }}
{{- with $svc.bootstrapOperatorKey }}{{ $_ := set $env "CREDMESH_BOOTSTRAP_OPERATOR_KEY" . }}{{ end }}
{{- else }}
{{- $_ := set $env "CREDMESH_CLIENT_ID" $svc.clientId }}
{{- $_ := set $env "CREDMESH_IDENTITY_URL" (include "credmesh.identityUrl" $root) }}
{{- range $dep := $svc.dependsOn }}
{{- if and (ne $dep "identity") (index $root.Values.services $dep).enabled }}
{{- $_ := set $env (printf "CREDMESH_%s_URL" (upper $dep)) (printf "%s://%s-%s:%d" (include "credmesh.scheme" $root) (include "credmesh.fullname" $root) $dep ($root.Values.ports.grpc | int)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if include "credmesh.usesPartners" $ctx }}
{{- $_ := set $env "CREDMESH_PARTNERS_FILE" "/etc/credmesh/partners/partners.json" }}
{{- end }}
{{- if include "credmesh.usesPartnerCa" $ctx }}
{{- $_ := set $env "CREDMESH_PARTNER_CA_FILE" "/etc/credmesh/partner-ca/ca.pem" }}
{{- end }}
{{- if $root.Values.tls.enabled }}
{{- range $k, $v := include "credmesh.tlsEnv" $root | fromYaml }}{{ $_ := set $env $k $v }}{{ end }}
{{- end }}
{{- range $k, $v := $root.Values.config.extraEnv }}{{ $_ := set $env $k (toString $v) }}{{ end }}
{{- range $k, $v := $svc.extraEnv }}{{ $_ := set $env $k (toString $v) }}{{ end }}
{{- toYaml $env }}
{{- end }}

{{/* One NetworkPolicy egress rule from {ports, to}; an empty `to` means any address. */}}
{{- define "credmesh.egressRule" -}}
- ports:
    {{- toYaml .ports | nindent 4 }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
The region's public documents and who publishes them, one "path|pathType|service" per
line, for the enabled services: JWKS and trust list (identity), status lists (every
issuing service), dispute notices (certificate). Partner regions and offline verifiers
fetch them at the region's public URL (the Ingress), the trust list's status_base_url.
*/}}
{{- define "credmesh.publicDocuments" -}}
{{- $r := .Values.region.code -}}
{{- $s := .Values.services -}}
{{- if $s.identity.enabled }}
/.well-known/jwks.json|Exact|identity
/v1/trust/|Prefix|identity
/v1/token|Exact|identity
{{- end }}
{{- range $name := list "license" "certificate" "inspection" }}
{{- if (index $s $name).enabled }}
/v1/status/{{ $r }}/{{ $name }}/|Prefix|{{ $name }}
{{- end }}
{{- end }}
{{- if $s.certificate.enabled }}
/v1/disputes/{{ $r }}/certificate|Exact|certificate
{{- end }}
{{- end }}
