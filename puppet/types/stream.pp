# A NATS connection and the JetStream stream (and, for the receiver, the durable consumer) it uses.
# cluster_id is the original's NATS Streaming key: accepted, and ignored with a warning.
type Prometheus_streams::Stream = Struct[{
  urls                            => Prometheus_streams::Urls,
  Optional[topic]                 => Pattern[/\A[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\z/],
  Optional[client_id]             => String[1],
  Optional[cluster_id]            => String[1],
  Optional[stream]                => Pattern[/\A[A-Za-z0-9_-]+\z/],
  Optional[replicas]              => Integer[1, 5],
  Optional[storage]               => Enum['file', 'memory'],
  Optional[stream_max_age]        => Prometheus_streams::Duration,
  Optional[stream_max_bytes]      => Prometheus_streams::Size,
  Optional[max_msgs_per_subject]  => Integer[1, 1000000],
  Optional[durable]               => String[1],
  Optional[fetch_batch]           => Integer[1, 10000],
  Optional[ack_wait]              => Prometheus_streams::Duration,
  Optional[tls]                   => Prometheus_streams::Tls,
}]
