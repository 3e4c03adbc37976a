{{/* Name prefix of every object. */}}
{{- define "horsestream.fullname" -}}
{{- printf "%s" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "horsestream.labels" -}}
app.kubernetes.io/name: horsestream
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "horsestream.selector" -}}
app.kubernetes.io/name: horsestream
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "horsestream.image" -}}
{{- printf "%s:%s%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) .Values.image.variant -}}
{{- end -}}

{{- define "horsestream.dbSecret" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecret }}{{- else -}}{{ include "horsestream.fullname" . }}-db{{- end -}}
{{- end -}}

{{- define "horsestream.jwtSecret" -}}
{{- if .Values.api.existingJwtSecret -}}{{ .Values.api.existingJwtSecret }}{{- else -}}{{ include "horsestream.fullname" . }}-jwt{{- end -}}
{{- end -}}

{{/* Environment shared by every component: the ConfigMap plus the database URL. */}}
{{- define "horsestream.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "horsestream.fullname" . }}-config
env:
  - name: HORSESTREAM_DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "horsestream.dbSecret" . }}
        key: {{ .Values.database.secretKey }}
  {{- if .Values.kafka.security.saslPasswordSecret }}
  - name: HORSESTREAM_KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ .Values.kafka.security.saslPasswordSecret }}
        key: saslPassword
  {{- end }}
{{- end -}}

{{/* The Kafka TLS Secret (CA, client certificate) of every pod, when set. */}}
{{- define "horsestream.kafkaTlsMount" -}}
{{- if .Values.kafka.security.tlsSecret -}}
- name: kafka-tls
  mountPath: /etc/horsestream/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "horsestream.kafkaTlsVolume" -}}
{{- if .Values.kafka.security.tlsSecret -}}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.security.tlsSecret }}
{{- end }}
{{- end -}}

{{- define "horsestream.modelVolume" -}}
- name: models
  {{- if .Values.models.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.models.existingClaim }}
    readOnly: true
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end -}}

{{/* Every resize restarts the timely cluster: grow one process at a time, shrink slowly. */}}
{{- define "horsestream.dataflowScalingBehavior" -}}
scaleUp:
  stabilizationWindowSeconds: 60
  policies:
    - type: Pods
      value: 1
      periodSeconds: 120
scaleDown:
  stabilizationWindowSeconds: {{ .Values.dataflow.autoscaling.scaleDownStabilizationSeconds }}
  policies:
    - type: Pods
      value: 1
      periodSeconds: 300
{{- end -}}
