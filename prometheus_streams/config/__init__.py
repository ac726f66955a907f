"""Load, validate and resolve the YAML configuration into immutable objects.

`model` holds the objects, `reader` walks the YAML, one module per section family
holds that section's rules, and `loading` puts them together (`load`, `parse`).
"""

from prometheus_streams.config import model
from prometheus_streams.config.jobs import check_labels, default_instance_name
from prometheus_streams.config.loading import load, parse
from prometheus_streams.config.management import shared_identity

# The objects are named once, in model.__all__; this package exports them all.
from prometheus_streams.config.model import *  # noqa: F403
from prometheus_streams.config.tls import is_puppet_certname

__all__ = [
    "check_labels",
    "default_instance_name",
    "is_puppet_certname",
    "load",
    "parse",
    "shared_identity",
]
__all__ += model.__all__
