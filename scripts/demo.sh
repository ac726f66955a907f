#!/usr/bin/env bash
# Set up and run a local demo: nats-server (JetStream), a Pushgateway, a poller
# scraping real targets (the Pushgateway's and its own metrics) and a receiver.
# Runs until Ctrl-C, or for DEMO_SECONDS seconds when that is set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

NATS_PORT=${NATS_PORT:-14222}
PGW_PORT=${PGW_PORT:-19091}
POLLER_PORT=${POLLER_PORT:-19100}
RECEIVER_PORT=${RECEIVER_PORT:-19101}
dir=.demo
rm -rf "$dir" && mkdir -p "$dir"

cat > "$dir/nats.conf" <<CONF
listen: 127.0.0.1:$NATS_PORT
jetstream { store_dir: "$PWD/$dir/jetstream" }
CONF

cat > "$dir/poller.yaml" <<CONF
identity: demo-dc1
scrape_interval: 5s
max_age: 1m
monitor_port: $POLLER_PORT
monitor_address: 127.0.0.1
poller_stream:
  urls: nats://127.0.0.1:$NATS_PORT
  topic: prometheus
jobs:
  receiver:
    targets:
      - url: http://127.0.0.1:$RECEIVER_PORT/metrics
        name: central-receiver
CONF

cat > "$dir/receiver.yaml" <<CONF
identity: demo-central
max_age: 1m
monitor_port: $RECEIVER_PORT
monitor_address: 127.0.0.1
receiver_stream:
  urls: nats://127.0.0.1:$NATS_PORT
  topic: prometheus
  client_id: demo_receiver
push_gateway:
  url: http://127.0.0.1:$PGW_PORT
  publisher_label: true
CONF

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo "demo: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

.venv/bin/nats-server -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 & pids+=($!)
prometheus-pushgateway --web.listen-address="127.0.0.1:$PGW_PORT" \
  --persistence.file="$dir/pushgateway.data" >"$dir/pushgateway.log" 2>&1 & pids+=($!)
.venv/bin/prometheus-streams --config "$dir/receiver.yaml" receiver 2>"$dir/receiver.log" & pids+=($!)
.venv/bin/prometheus-streams --config "$dir/poller.yaml" poller 2>"$dir/poller.log" & pids+=($!)

cat <<TXT
demo: running (logs in $dir/)
  Pushgateway        http://127.0.0.1:$PGW_PORT/        (what the central Prometheus scrapes)
  poller status      http://127.0.0.1:$POLLER_PORT/     metrics: /metrics
  receiver status    http://127.0.0.1:$RECEIVER_PORT/   metrics: /metrics
TXT

start=$(date +%s)
while :; do
  sleep 5
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "demo: a process exited; see $dir/*.log" >&2; exit 1; }
  done
  echo "demo: series in the Pushgateway from the poller:"
  curl -fsS "http://127.0.0.1:$PGW_PORT/metrics" 2>/dev/null \
    | grep -E '^(up|scrape_samples_scraped|scrape_duration_seconds)\{' | sed 's/^/  /' || true
  if [ -n "${DEMO_SECONDS:-}" ] && [ $(( $(date +%s) - start )) -ge "$DEMO_SECONDS" ]; then
    echo "demo: done after ${DEMO_SECONDS}s"
    exit 0
  fi
done
