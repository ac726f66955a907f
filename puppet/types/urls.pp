# NATS server URLs: one, a comma-separated list, or an array.
type Prometheus_streams::Urls = Variant[String[1], Array[String[1], 1]]
