# A job: its targets and optional per-job scrape settings.
type Prometheus_streams::Job = Struct[{
  targets                   => Array[Prometheus_streams::Target, 1],
  Optional[scrape_interval] => Prometheus_streams::Duration,
  Optional[scrape_timeout]  => Prometheus_streams::Duration,
  Optional[body_size_limit] => Prometheus_streams::Size,
}]
