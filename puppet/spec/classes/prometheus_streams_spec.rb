# frozen_string_literal: true

require 'spec_helper'

CONFIG = '/etc/prometheus-streams/prometheus-streams.yaml'
POLLER_STREAM = { 'urls' => 'nats://nats.dc1.example.net:4222', 'topic' => 'prometheus' }.freeze
RECEIVER_STREAM = { 'urls' => ['nats://nats.central.example.net:4222'], 'client_id' => 'prometheus_receiver' }.freeze
PUSH_GATEWAY = { 'url' => 'http://pushgateway.example.net:9091', 'publisher_label' => true }.freeze
JOBS = { 'node' => { 'targets' => [{ 'name' => 'web1', 'url' => 'http://web1.dc1.example.net:9100/metrics' }] } }.freeze

describe 'prometheus_streams' do
  let(:rendered) { rendered_config(catalogue) }

  context 'with defaults' do
    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_package('prometheus-streams').with_ensure('present') }

    it 'writes the config readable by the daemon group only' do
      is_expected.to contain_file(CONFIG).with(ensure: 'file', owner: 'root', group: 'prometheus-streams', mode: '0640')
    end

    it 'marks the file as managed and renders the top-level defaults' do
      expect(catalogue.resource('File', CONFIG)[:content]).to start_with("# Managed by Puppet")
      expect(rendered).to eq(
        'identity' => 'node.dc1.example.net',
        'verbose' => false,
        'debug' => false,
        'logfile' => '/var/log/prometheus-streams/prometheus-streams.log',
        'scrape_interval' => '30s',
        'max_age' => 65,
        'monitor_port' => 0,
      )
    end

    it 'runs neither service' do
      %w[prometheus-streams-poller prometheus-streams-receiver].each do |name|
        is_expected.to contain_service(name).with(ensure: false, enable: false)
      end
    end

    it 'installs, then configures, then refreshes the services' do
      is_expected.to contain_class('prometheus_streams::install').that_comes_before('Class[prometheus_streams::config]')
      is_expected.to contain_class('prometheus_streams::config').that_notifies('Class[prometheus_streams::service]')
      is_expected.to contain_package('prometheus-streams').that_comes_before("File[#{CONFIG}]")
      is_expected.to contain_file(CONFIG).that_notifies('Service[prometheus-streams-poller]')
    end

    it 'reloads rather than restarts on a config change' do
      is_expected.to contain_service('prometheus-streams-poller')
        .with_restart('/bin/systemctl reload prometheus-streams-poller.service')
      is_expected.to contain_service('prometheus-streams-receiver')
        .with_restart('/bin/systemctl reload prometheus-streams-receiver.service')
    end
  end

  context 'poller group' do
    let(:params) { { poller: true, poller_stream: POLLER_STREAM.merge('cluster_id' => 'dc1_stream', 'stream' => 'PROM', 'replicas' => 3, 'storage' => 'file', 'stream_max_age' => '10m', 'stream_max_bytes' => '1GiB', 'max_msgs_per_subject' => 10), jobs: JOBS.merge('app' => { 'scrape_interval' => '15s', 'scrape_timeout' => '5s', 'body_size_limit' => '10MiB', 'targets' => [{ 'url' => 'http://app.dc1.example.net:8080/metrics' }] }) } }

    it { is_expected.to contain_service('prometheus-streams-poller').with(ensure: true, enable: true) }
    it { is_expected.to contain_service('prometheus-streams-receiver').with(ensure: false, enable: false) }

    it 'renders the stream and the jobs as given' do
      expect(rendered['poller_stream']).to eq(params[:poller_stream])
      expect(rendered['jobs']).to eq(params[:jobs])
      expect(rendered).not_to include('receiver_stream', 'push_gateway')
    end

    context 'without a stream' do
      let(:params) { { poller: true, jobs: JOBS } }

      it { is_expected.to compile.and_raise_error(%r{poller needs poller_stream}) }
    end

    context 'with a target that is not a URL' do
      let(:params) { { poller: true, poller_stream: POLLER_STREAM, jobs: { 'node' => { 'targets' => [{ 'url' => 'web1:9100' }] } } } }

      it { is_expected.to compile.and_raise_error(%r{jobs}) }
    end

    context 'with a stream name JetStream refuses' do
      let(:params) { { poller: true, poller_stream: POLLER_STREAM.merge('stream' => 'a.b'), jobs: JOBS } }

      it { is_expected.to compile.and_raise_error(%r{poller_stream}) }
    end
  end

  context 'receiver group' do
    let(:params) { { receiver: true, receiver_stream: RECEIVER_STREAM.merge('durable' => 'central', 'fetch_batch' => 128, 'ack_wait' => '1m'), push_gateway: PUSH_GATEWAY.merge('timeout' => '5s', 'concurrency' => 16) } }

    it { is_expected.to contain_service('prometheus-streams-receiver').with(ensure: true, enable: true) }
    it { is_expected.to contain_service('prometheus-streams-poller').with(ensure: false, enable: false) }

    it 'renders the stream and the Pushgateway as given' do
      expect(rendered['receiver_stream']).to eq(params[:receiver_stream])
      expect(rendered['push_gateway']).to eq(params[:push_gateway])
    end

    context 'without an output' do
      let(:params) { { receiver: true, receiver_stream: RECEIVER_STREAM } }

      it { is_expected.to compile.and_raise_error(%r{receiver needs receiver_stream, and push_gateway or remote_write}) }
    end

    context 'with remote_write only' do
      let(:remote_write) do
        [
          { 'url' => 'http://vm.example.net:8428/api/v1/write' },
          {
            'url' => 'https://mimir.example.net/api/v1/push', 'name' => 'mimir', 'headers' => { 'X-Scope-OrgID' => 'dc1' },
            'basic_auth' => { 'username' => 'u', 'password_file' => '/etc/prometheus-streams/mimir.pw' },
            'tls_config' => { 'ca_file' => '/etc/pki/ca.pem', 'insecure_skip_verify' => false },
            'remote_timeout' => '10s', 'queue_config' => { 'max_samples_per_send' => 500, 'batch_send_deadline' => '2s' }
          },
        ]
      end
      let(:params) { { receiver: true, receiver_stream: RECEIVER_STREAM, remote_write: remote_write, publisher_label: 'datacenter' } }

      it { is_expected.to compile.with_all_deps }

      it 'renders the list and the label, and no Pushgateway' do
        expect(rendered['remote_write']).to eq(remote_write)
        expect(rendered['publisher_label']).to eq('datacenter')
        expect(rendered).not_to include('push_gateway')
      end
    end

    context 'with a remote_write name a consumer cannot carry' do
      let(:params) { { receiver: true, receiver_stream: RECEIVER_STREAM, remote_write: [{ 'url' => 'http://vm:8428/api/v1/write', 'name' => 'vm.prod' }] } }

      it { is_expected.to compile.and_raise_error(%r{remote_write}) }
    end

    context 'with a publisher_label that is no label name' do
      let(:params) { { publisher_label: 'dc-name' } }

      it { is_expected.to compile.and_raise_error(%r{publisher_label}) }
    end

    context 'with a Pushgateway URL that is not http(s)' do
      let(:params) { { receiver: true, receiver_stream: RECEIVER_STREAM, push_gateway: { 'url' => 'ftp://x' } } }

      it { is_expected.to compile.and_raise_error(%r{push_gateway}) }
    end
  end

  context 'top-level settings group' do
    let(:params) do
      {
        identity: 'dc1', debug: true, verbose: true, log_file: false,
        scrape_interval: '1m30s', scrape_timeout: '10s', max_age: '90s',
        monitor_port: 9900, monitor_address: '127.0.0.1', body_size_limit: '16MiB', shutdown_grace: 15
      }
    end

    it 'renders every setting and leaves the log file out' do
      expect(rendered).to eq(
        'identity' => 'dc1', 'verbose' => true, 'debug' => true,
        'scrape_interval' => '1m30s', 'scrape_timeout' => '10s', 'max_age' => '90s',
        'monitor_port' => 9900, 'monitor_address' => '127.0.0.1',
        'body_size_limit' => '16MiB', 'shutdown_grace' => 15,
      )
    end

    context 'with a duration in no known syntax' do
      let(:params) { { scrape_interval: '30 seconds' } }

      it { is_expected.to compile.and_raise_error(%r{scrape_interval}) }
    end

    context 'with a port out of range' do
      let(:params) { { monitor_port: 70_000 } }

      it { is_expected.to compile.and_raise_error(%r{monitor_port}) }
    end
  end

  context 'tls group' do
    context 'with the Puppet ssldir layout at the top level' do
      let(:params) { { tls: { 'scheme' => 'puppet', 'identity' => 'dc1.example.net', 'ssl_dir' => '/etc/prometheus-streams/ssl' } } }

      it { expect(rendered['tls']).to eq(params[:tls]) }
    end

    context 'with manual files on one stream' do
      let(:tls) { { 'scheme' => 'manual', 'ca' => '/etc/pki/ca.pem', 'cert' => '/etc/pki/c.pem', 'key' => '/etc/pki/k.pem' } }
      let(:params) { { receiver: true, receiver_stream: RECEIVER_STREAM.merge('tls' => tls), push_gateway: PUSH_GATEWAY } }

      it { expect(rendered['receiver_stream']['tls']).to eq(tls) }
      it { expect(rendered).not_to include('tls') }
    end

    context 'with manual scheme missing the key' do
      let(:params) { { tls: { 'scheme' => 'manual', 'ca' => '/a', 'cert' => '/b' } } }

      it { is_expected.to compile.and_raise_error(%r{tls}) }
    end
  end

  context 'management group' do
    let(:params) { { management: { 'name' => 'app', 'loglevel' => 'warn', 'brokers' => ['choria1.example.net:4222'] } } }

    it { expect(rendered['management']).to eq(params[:management]) }
  end

  context 'extra_config group' do
    let(:params) { { receiver: true, receiver_stream: RECEIVER_STREAM, push_gateway: PUSH_GATEWAY, extra_config: { 'push_gateway' => { 'concurrency' => 4 }, 'future_key' => 'x' } } }

    it 'deep-merges over the rendered sections' do
      expect(rendered['push_gateway']).to eq(PUSH_GATEWAY.merge('concurrency' => 4))
      expect(rendered['future_key']).to eq('x')
    end
  end

  context 'package and service names group' do
    let(:params) { { package_name: 'ps', version: '0.1.0-1', poller_service_name: 'p', receiver_service_name: 'r', config_file: '/srv/ps.yaml', config_owner: 'ps', config_group: 'ps', config_mode: '0600' } }

    it { is_expected.to contain_package('ps').with_ensure('0.1.0-1') }
    it { is_expected.to contain_service('p').with_restart('/bin/systemctl reload p.service') }
    it { is_expected.to contain_service('r') }
    it { is_expected.to contain_file('/srv/ps.yaml').with(owner: 'ps', group: 'ps', mode: '0600') }
  end

  context 'management switches group' do
    let(:params) { { manage_package: false, manage_service: false, poller: true, poller_stream: POLLER_STREAM, jobs: JOBS } }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.not_to contain_package('prometheus-streams') }
    it { is_expected.not_to contain_service('prometheus-streams-poller') }
    it { is_expected.to contain_file(CONFIG).with_ensure('file') }
  end

  context 'ensure absent' do
    let(:params) { { ensure: 'absent', poller: true, receiver: true } }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_package('prometheus-streams').with_ensure('absent') }
    it { is_expected.to contain_file(CONFIG).with_ensure('absent') }

    it 'stops and disables both services before removing files and package' do
      %w[prometheus-streams-poller prometheus-streams-receiver].each do |name|
        is_expected.to contain_service(name).with(ensure: false, enable: false)
        is_expected.to contain_service(name).that_comes_before("File[#{CONFIG}]")
      end
      is_expected.to contain_file(CONFIG).that_comes_before('Package[prometheus-streams]')
    end
  end
end
