# One remote-write store of the receiver, in the keys of Prometheus' own remote_write entries.
# The nested sections are checked by the daemon (check-config), which names the bad key.
type Prometheus_streams::Remote_write = Struct[{
  url                         => Stdlib::HTTPUrl,
  Optional[name]              => Pattern[/\A[A-Za-z0-9_-]{1,64}\z/],
  Optional[headers]           => Hash[String[1], String[1]],
  Optional[basic_auth]        => Hash[Enum['username', 'username_file', 'password', 'password_file', 'password_env'], String[1]],
  Optional[authorization]     => Hash[Enum['type', 'credentials', 'credentials_file', 'credentials_env'], String[1]],
  Optional[bearer_token_file] => Stdlib::Absolutepath,
  Optional[tls_config]        => Hash[String[1], Variant[String[1], Boolean]],
  Optional[remote_timeout]    => Prometheus_streams::Duration,
  Optional[queue_config]      => Hash[String[1], Variant[Integer[1], Prometheus_streams::Duration]],
}]
