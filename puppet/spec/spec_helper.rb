# frozen_string_literal: true

# rspec-puppet against a throwaway module path holding this module and the
# system's stdlib (Debian: puppet-module-puppetlabs-stdlib), so the repository
# needs no fixtures directory.
require 'fileutils'
require 'rspec-puppet'
require 'tmpdir'
require 'yaml'

stdlib = ENV.fetch('STDLIB_MODULE', '/usr/share/puppet/modules/stdlib')
raise "stdlib module not found at #{stdlib} (set STDLIB_MODULE)" unless File.directory?(stdlib)

module_path = Dir.mktmpdir('prometheus_streams-spec')
File.symlink(File.expand_path('..', __dir__), File.join(module_path, 'prometheus_streams'))
File.symlink(stdlib, File.join(module_path, 'stdlib'))
at_exit { FileUtils.rm_rf(module_path) }

RSpec.configure do |c|
  c.setup_fixtures = false
  c.module_path = module_path
  c.default_facts = {
    kernel: 'Linux',
    networking: { 'fqdn' => 'node.dc1.example.net', 'hostname' => 'node' },
    os: { 'family' => 'RedHat', 'name' => 'AlmaLinux', 'release' => { 'major' => '9' } },
  }
end

# The YAML the module renders, as Ruby data.
def rendered_config(catalogue, path = '/etc/prometheus-streams/prometheus-streams.yaml')
  YAML.safe_load(catalogue.resource('File', path)[:content])
end
