# @summary Renders the configuration file as YAML from the class parameters.
# @api private
class prometheus_streams::config {
  assert_private()

  $settings = {
    'identity'        => $prometheus_streams::identity,
    'verbose'         => $prometheus_streams::verbose,
    'debug'           => $prometheus_streams::debug,
    'logfile'         => $prometheus_streams::log_file ? { false => undef, default => $prometheus_streams::log_file },
    'scrape_interval' => $prometheus_streams::scrape_interval,
    'scrape_timeout'  => $prometheus_streams::scrape_timeout,
    'max_age'         => $prometheus_streams::max_age,
    'monitor_port'    => $prometheus_streams::monitor_port,
    'monitor_address' => $prometheus_streams::monitor_address,
    'body_size_limit' => $prometheus_streams::body_size_limit,
    'shutdown_grace'  => $prometheus_streams::shutdown_grace,
    'tls'             => $prometheus_streams::tls,
    'poller_stream'   => $prometheus_streams::poller_stream,
    'receiver_stream' => $prometheus_streams::receiver_stream,
    'push_gateway'    => $prometheus_streams::push_gateway,
    'remote_write'    => $prometheus_streams::remote_write,
    'publisher_label' => $prometheus_streams::publisher_label,
    'management'      => $prometheus_streams::management,
    'jobs'            => $prometheus_streams::jobs,
  }
  # Unset and empty sections are left out, so the daemon's defaults apply.
  $set = $settings.filter |$key, $value| {
    $value =~ NotUndef and !($value =~ Collection and $value.empty)
  }
  $config = deep_merge($set, $prometheus_streams::extra_config)

  $file_ensure = $prometheus_streams::ensure ? {
    'present' => 'file',
    default   => 'absent',
  }

  file { $prometheus_streams::config_file:
    ensure  => $file_ensure,
    owner   => $prometheus_streams::config_owner,
    group   => $prometheus_streams::config_group,
    mode    => $prometheus_streams::config_mode,
    content => "# Managed by Puppet (class prometheus_streams): local changes are overwritten.\n${to_yaml($config)}",
  }
}
