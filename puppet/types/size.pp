# A size: bytes, or a number with a unit (10MiB, 512KB, 1GiB).
type Prometheus_streams::Size = Variant[
  Integer[0],
  Pattern[/\A\d+(\.\d+)?\s*([KMGT]i?B|B)?\z/],
]
