"""Parse durations and byte sizes the way Prometheus users write them."""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "T": 1024**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}


def parse_duration(value: object) -> float:
    """Return seconds for `30s`, `1m30s`, `500ms` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number of seconds: {value!r}")
        if value < 0:
            raise ValueError(f"must not be negative: {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration (use e.g. 30s, 1m30s, 500ms): {value!r}")
    return total


def parse_size(value: object) -> int:
    """Return bytes for `10MiB`, `512KB`, or a bare number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative: {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a size: {value!r}")
    match = _SIZE.match(value)
    unit = (match.group(2) or "").upper() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"not a size (use e.g. 10MiB, 512KB, 1048576): {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


# Prometheus' body_size_limit (units.Base2Bytes): KB and KiB alike are 1024
# bytes, up to E; case matters (kB, mb are refused); parts add up (1MB512KB).
_BASE2_UNITS = {"B": 1} | {
    f"{prefix}{suffix}": 1024 ** (power + 1)
    for power, prefix in enumerate("KMGTPE")
    for suffix in ("B", "iB")
}
# A blank before the unit is ours (the Puppet module's Size type allows it).
_BASE2_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)[ \t]*([A-Za-z]+)")


def parse_base2_size(value: object) -> int:
    """Return bytes for a size as Prometheus reads body_size_limit: `10MB` is 10 * 1024**2."""
    if isinstance(value, str) and not re.fullmatch(r"\s*\d+\s*", value):
        text = value.strip()
        pos = total = 0
        for match in _BASE2_PART.finditer(text):
            unit = _BASE2_UNITS.get(match.group(2))
            if match.start() != pos or unit is None:
                break
            total += float(match.group(1)) * unit
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(
                f"not a size as Prometheus writes it (e.g. 10MB or 10MiB, both 1024-based; "
                f"B, KB, MB, GB, TB, PB, EB with or without i, case as shown): {value!r}"
            )
        return int(total)
    return parse_size(value)


def format_duration(seconds: float) -> str:
    """Render seconds compactly for logs and check-config output."""
    return f"{seconds:g}s"
