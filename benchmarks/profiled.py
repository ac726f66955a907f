"""Run `prometheus-streams` under cProfile timed by CPU, not wall-clock, time.

Wall-clock profiles of the poller charge to `socket.send` the time the
kernel gives the receiving process on a 2-core machine; CPU time does not.
Stats go to the file named by BENCH_PROFILE_OUT when the process exits.

Run: BENCH_PROFILE_OUT=FILE python benchmarks/profiled.py ARGS...
"""

from __future__ import annotations

import cProfile
import os
import sys
import time

from prometheus_streams.cli import main

if __name__ == "__main__":
    profile = cProfile.Profile(time.process_time)
    code = 1
    try:
        code = profile.runcall(main, sys.argv[1:])
    finally:
        profile.dump_stats(os.environ["BENCH_PROFILE_OUT"])
    sys.exit(code)
