# TLS from a Puppet ssldir: certs/ca.pem, certs/<identity>.pem, private_keys/<identity>.pem.
type Prometheus_streams::Tls::Puppet = Struct[{
  scheme              => Enum['puppet'],
  ssl_dir             => Stdlib::Absolutepath,
  Optional[identity]  => String[1],
}]
