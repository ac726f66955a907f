# @summary Installs or removes the package.
# @api private
class prometheus_streams::install {
  assert_private()

  if $prometheus_streams::manage_package {
    $package_ensure = $prometheus_streams::ensure ? {
      'present' => $prometheus_streams::version,
      default   => 'absent',
    }

    package { $prometheus_streams::package_name:
      ensure => $package_ensure,
    }
  }
}
