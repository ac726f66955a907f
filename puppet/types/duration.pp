# A duration: Prometheus syntax (30s, 1m30s, 500ms) or a number of seconds.
type Prometheus_streams::Duration = Variant[
  Integer[0],
  Float[0],
  Pattern[/\A(\d+(\.\d+)?(ms|s|m|h|d|w|y))+\z/],
]
