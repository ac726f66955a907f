# TLS from explicit CA, certificate and key files.
type Prometheus_streams::Tls::Manual = Struct[{
  scheme              => Enum['manual', 'file'],
  ca                  => Stdlib::Absolutepath,
  cert                => Stdlib::Absolutepath,
  key                 => Stdlib::Absolutepath,
  Optional[identity]  => String[1],
  Optional[cache]     => Stdlib::Absolutepath,
}]
