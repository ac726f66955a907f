"""A TCP proxy on a free loopback port that a test can cut and restore (a WAN link, a store).

It lives in benchmarks/tcpproxy.py, where the benchmark's `topology` scenario uses it too.
"""

from __future__ import annotations

from benchmarks.tcpproxy import TcpProxy

__all__ = ["TcpProxy"]
