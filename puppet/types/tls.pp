# TLS to NATS: the Puppet ssldir layout, or explicit files (scheme manual, alias file).
type Prometheus_streams::Tls = Variant[
  Prometheus_streams::Tls::Puppet,
  Prometheus_streams::Tls::Manual,
]
