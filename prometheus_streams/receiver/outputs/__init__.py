"""Where the receiver stores scrapes: one module per kind of output (see receiver/output.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from prometheus_streams.config import Config
from prometheus_streams.receiver.output import Context, Output
from prometheus_streams.receiver.outputs.pushgateway import PushgatewayOutput


def build_output(config: Config, registry: CollectorRegistry, context: Context) -> Output:
    """The output the configuration asks for (today: the Pushgateway)."""
    return PushgatewayOutput(config, registry, context)
