# @summary Install, configure and run prometheus-streams: Prometheus federation over NATS JetStream.
#
# A poller scrapes targets and publishes to JetStream; a receiver consumes and
# pushes to a Pushgateway, remote-writes to a store, or both. This class writes /etc/prometheus-streams/prometheus-streams.yaml
# from its parameters, installs the package and runs the services selected.
# Configuration changes reload the services (SIGHUP), they do not restart them.
#
# This module does not configure a package repository.
#
# @example A poller in a datacenter
#   class { 'prometheus_streams':
#     poller        => true,
#     poller_stream => { 'urls' => 'nats://nats.dc1.example.net:4222', 'topic' => 'prometheus' },
#     jobs          => { 'node' => { 'targets' => [{ 'url' => 'http://web1.dc1.example.net:9100/metrics' }] } },
#   }
#
# @param poller Run the poller service.
# @param receiver Run the receiver service.
# @param identity Publisher name the poller puts on its scrapes.
# @param config_file Path of the configuration file.
# @param log_file File the daemons also write JSON log lines to; false for none (the journal only).
# @param debug Log at debug level.
# @param verbose Kept from the original; info is the default level anyway.
# @param scrape_interval Default interval of every job.
# @param scrape_timeout Default scrape timeout of every job (never above the interval).
# @param max_age Scrapes older than this are neither published after an outage nor pushed.
# @param monitor_port Port of the own metrics, health and status pages; 0 turns them off.
# @param monitor_address Address the monitor port listens on.
# @param body_size_limit Largest scrape body, and largest decompressed message.
# @param shutdown_grace Time to finish in-flight work on SIGTERM.
# @param poller_stream NATS and JetStream settings of the poller.
# @param receiver_stream NATS and JetStream settings of the receiver.
# @param push_gateway The Pushgateway the receiver pushes to.
# @param remote_write Remote-write stores the receiver writes to (Prometheus' remote_write keys).
# @param publisher_label Label naming the poller on every remote-written series (default publisher).
# @param management The original's Choria backplane settings (accepted with a warning, unused).
# @param tls TLS for every NATS connection that has none of its own.
# @param jobs Jobs the poller scrapes: job name to targets and settings.
# @param extra_config Further configuration keys, deep-merged over the ones above.
# @param poller_service_name Name of the poller's systemd service.
# @param receiver_service_name Name of the receiver's systemd service.
# @param package_name Name of the package to install.
# @param ensure Install (present) or remove (absent) everything this class manages.
# @param version Package version to install, or present/latest.
# @param manage_package Manage the package; false when it is installed otherwise.
# @param manage_service Manage the services; false when they are run otherwise.
# @param config_owner Owner of the configuration file.
# @param config_group Group of the configuration file (the daemon's group, which must read it).
# @param config_mode Mode of the configuration file (it may hold credentials).
class prometheus_streams (
  Boolean $poller = false,
  Boolean $receiver = false,
  String[1] $identity = $facts['networking']['fqdn'],
  Stdlib::Absolutepath $config_file = '/etc/prometheus-streams/prometheus-streams.yaml',
  Variant[Stdlib::Absolutepath, Boolean[false]] $log_file = '/var/log/prometheus-streams/prometheus-streams.log',
  Boolean $debug = false,
  Boolean $verbose = false,
  Prometheus_streams::Duration $scrape_interval = '30s',
  Optional[Prometheus_streams::Duration] $scrape_timeout = undef,
  Prometheus_streams::Duration $max_age = 65,
  Integer[0, 65535] $monitor_port = 0,
  Optional[String[1]] $monitor_address = undef,
  Optional[Prometheus_streams::Size] $body_size_limit = undef,
  Optional[Prometheus_streams::Duration] $shutdown_grace = undef,
  Variant[Prometheus_streams::Stream, Hash[0, 0]] $poller_stream = {},
  Variant[Prometheus_streams::Stream, Hash[0, 0]] $receiver_stream = {},
  Variant[Prometheus_streams::Push_gateway, Hash[0, 0]] $push_gateway = {},
  Array[Prometheus_streams::Remote_write] $remote_write = [],
  Optional[Pattern[/\A[a-zA-Z_][a-zA-Z0-9_]*\z/]] $publisher_label = undef,
  Variant[Prometheus_streams::Management, Hash[0, 0]] $management = {},
  Optional[Prometheus_streams::Tls] $tls = undef,
  Hash[String[1], Prometheus_streams::Job] $jobs = {},
  Hash[String[1], Data] $extra_config = {},
  String[1] $poller_service_name = 'prometheus-streams-poller',
  String[1] $receiver_service_name = 'prometheus-streams-receiver',
  String[1] $package_name = 'prometheus-streams',
  Enum['present', 'absent'] $ensure = 'present',
  String[1] $version = 'present',
  Boolean $manage_package = true,
  Boolean $manage_service = true,
  String[1] $config_owner = 'root',
  String[1] $config_group = 'prometheus-streams',
  Stdlib::Filemode $config_mode = '0640',
) {
  if $ensure == 'present' {
    if $poller and ($poller_stream.empty or $jobs.empty) {
      fail('prometheus_streams: the poller needs poller_stream and at least one job')
    }
    if $receiver and ($receiver_stream.empty or ($push_gateway.empty and $remote_write.empty)) {
      fail('prometheus_streams: the receiver needs receiver_stream, and push_gateway or remote_write')
    }
    contain prometheus_streams::install
    contain prometheus_streams::config
    contain prometheus_streams::service

    Class['prometheus_streams::install']
    -> Class['prometheus_streams::config']
    ~> Class['prometheus_streams::service']
  } else {
    # Stop the services before the files they use go away.
    contain prometheus_streams::service
    contain prometheus_streams::config
    contain prometheus_streams::install

    Class['prometheus_streams::service']
    -> Class['prometheus_streams::config']
    -> Class['prometheus_streams::install']
  }
}
