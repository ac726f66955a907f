"""Allow `python -m prometheus_streams`."""

from prometheus_streams.cli import main

raise SystemExit(main())
