# One scrape target; name (the instance label) defaults to host:port of the URL.
type Prometheus_streams::Target = Struct[{
  url             => Stdlib::HTTPUrl,
  Optional[name]  => String[1],
}]
