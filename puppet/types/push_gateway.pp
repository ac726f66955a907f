# The Pushgateway the receiver pushes to.
type Prometheus_streams::Push_gateway = Struct[{
  url                       => Stdlib::HTTPUrl,
  Optional[publisher_label] => Boolean,
  Optional[timeout]         => Prometheus_streams::Duration,
  Optional[concurrency]     => Integer[1, 1024],
}]
