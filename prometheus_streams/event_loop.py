"""Which asyncio event loop the roles run on: uvloop when installed, else asyncio's own.

uvloop is an optional speedup (the `fast` extra; the test and demo venvs have
it): on the poller's workload it takes 2-4 % off its CPU
(docs/performance.md, "Against vmagent"). PROMETHEUS_STREAMS_LOOP=asyncio
keeps asyncio's loop with uvloop installed, to compare or to rule the loop out.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
ENV = "PROMETHEUS_STREAMS_LOOP"
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

log = logging.getLogger("prometheus_streams")


def choose(env: Mapping[str, str] = os.environ) -> tuple[LoopFactory | None, str]:
    """The loop factory to use (None: asyncio's default) and its name for the log."""
    if env.get(ENV, "").strip().lower() == "asyncio":
        return None, f"asyncio ({ENV}=asyncio)"
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None, "asyncio (uvloop not installed)"
    factory: LoopFactory = uvloop.new_event_loop
    return factory, f"uvloop {getattr(uvloop, '__version__', '')}".strip()


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run() on the chosen loop, saying in the log which one."""
    factory, name = choose()
    log.info("event loop: %s", name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
