"""Federate Prometheus metrics over NATS JetStream into a Pushgateway."""

__version__ = "0.1.0"
