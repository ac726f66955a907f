"""The optional C pass (prometheus_streams/_speedups*.c); everything else is in pyproject.toml.

`optional=True`: without a C compiler or Python's headers the build warns
and goes on, and prometheus_streams.exposition uses its regex instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "prometheus_streams._speedups",
            [
                "prometheus_streams/_speedups.c",
                "prometheus_streams/_speedups_scan.c",
                "prometheus_streams/_speedups_check.c",
                "prometheus_streams/_speedups_parse.c",
                "prometheus_streams/_speedups_encode.c",
                "prometheus_streams/_speedups_rewrite.c",
            ],
            depends=["prometheus_streams/_speedups.h"],
            optional=True,
        )
    ]
)
