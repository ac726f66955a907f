# The original's Choria backplane settings: accepted with a warning, unused by this version.
type Prometheus_streams::Management = Struct[{
  Optional[brokers]   => Array[String[1]],
  Optional[name]      => String[1],
  Optional[logfile]   => Stdlib::Absolutepath,
  Optional[loglevel]  => String[1],
  Optional[tls]       => Prometheus_streams::Tls,
}]
