"""The remote-write codec's cost per node-sized page: parse, labels, encode, compress.

Usage: .venv/bin/python -m benchmarks.rw_codec
Each figure is the fastest of five repeats of many calls, in this process.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable

from benchmarks import pages
from prometheus_streams.receiver.remote_write import protocol, text

EXTRA = [("job", "node"), ("instance", "host-0001.example.net:9100"), ("publisher", "dc1")]


def _us(fn: Callable[[], object], number: int = 200) -> float:
    """Microseconds per call: the fastest of five repeats."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    """Print microseconds per node page for each step, and per sample."""
    page = pages.node_page()
    samples = text.parse_page(page)
    keys = [key for key, _, _ in samples]
    labels = {key: protocol.encode_labels([*text.series_labels(key), *EXTRA]) for key in keys}
    stamp = int(time.time() * 1000)

    def encoder(encode_series: Callable[[bytes, list[tuple[float, int]]], bytes]) -> bytes:
        return protocol.write_request(
            encode_series(labels[key], [(value, stamp)]) for key, value, _ in samples
        )

    def encode() -> bytes:
        return encoder(protocol.encode_series)

    body = encode()
    packed = protocol.compress(body)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("parse_page (python)", lambda: text.python_parse_page(page)),
    ]
    if text.NATIVE_PARSE is not None:
        steps.append(("parse_page (C)", lambda: text.parse_page(page)))
    steps += [
        ("series_labels, every key", lambda: [text.series_labels(key) for key in keys]),
        (
            "series_labels + encode_labels",
            lambda: [protocol.encode_labels([*text.series_labels(k), *EXTRA]) for k in keys],
        ),
        ("encode (python, labels cached)", lambda: encoder(protocol.python_encode_series)),
        ("encode (labels cached)", encode),
        ("compress", lambda: protocol.compress(body)),
        ("decompress", lambda: protocol.decompress(packed)),
    ]
    print(
        f"node page: {len(page)} bytes, {len(samples)} samples; "
        f"request {len(body)} bytes, {len(packed)} compressed"
    )
    for name, step in steps:
        cost = _us(step, number=20 if "labels" in name else 200)
        print(f"{name:30} {cost:9.1f} us/page {cost / len(samples) * 1000:8.0f} ns/sample")


if __name__ == "__main__":
    main()
