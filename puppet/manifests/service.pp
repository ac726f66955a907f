# @summary Runs, reloads or stops the poller and receiver services.
# @api private
#
# A notification from the configuration reloads a running service (SIGHUP
# through `systemctl reload`) instead of restarting it.
class prometheus_streams::service {
  assert_private()

  if $prometheus_streams::manage_service {
    $services = {
      $prometheus_streams::poller_service_name   => $prometheus_streams::poller,
      $prometheus_streams::receiver_service_name => $prometheus_streams::receiver,
    }
    $services.each |$name, $wanted| {
      $run = $wanted and $prometheus_streams::ensure == 'present'
      service { $name:
        ensure  => $run,
        enable  => $run,
        restart => "/bin/systemctl reload ${name}.service",
      }
    }
  }
}
