"""wire.decompress through ISA-L agrees with zlib alone: the same bytes, or the same error."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prometheus_streams import wire
from prometheus_streams.wire import WireError

MANY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GZIP = 16 + zlib.MAX_WBITS


def _zlib_only(payload: bytes, limit: int, wbits: int) -> bytes:
    return wire._inflate(payload, limit, wbits, zlib.decompressobj, zlib.error)


def _outcome(inflate: object, *args: object) -> tuple[str, object]:
    try:
        return "body", inflate(*args)  # type: ignore[operator]
    except WireError as exc:
        return exc.reason, str(exc)


def _deflate(data: bytes, wbits: int, level: int) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


def test_isal_is_the_fast_path() -> None:
    assert wire._ISAL_INFLATER is not None  # isal is a dependency: without it, this fails


@MANY
@given(
    st.lists(st.binary(max_size=3000), min_size=1, max_size=3),
    st.integers(0, 9),
    st.integers(0, 10_000),
    st.sampled_from(["whole", "truncate", "flip", "append"]),
    st.integers(0, 1 << 16),
    st.sampled_from([GZIP, zlib.MAX_WBITS, -zlib.MAX_WBITS]),
)
def test_decompress_agrees_with_zlib(
    members: list[bytes], level: int, limit: int, damage: str, where: int, wbits: int
) -> None:
    if wbits == GZIP:
        payload = b"".join(gzip.compress(m, level, mtime=0) for m in members)
    else:
        payload = _deflate(members[0], wbits, level)
    if payload and damage == "truncate":
        payload = payload[: where % len(payload)]
    elif payload and damage == "flip":
        at = where % len(payload)
        payload = payload[:at] + bytes([payload[at] ^ (1 + where % 255)]) + payload[at + 1 :]
    elif damage == "append":
        payload += where.to_bytes(3, "big")
    assert _outcome(wire.decompress, payload, limit, wbits) == _outcome(
        _zlib_only, payload, limit, wbits
    )


@MANY
@given(st.binary(max_size=200), st.integers(0, 1000))
def test_decompress_agrees_with_zlib_on_noise(payload: bytes, limit: int) -> None:
    assert _outcome(wire.decompress, payload, limit, GZIP) == _outcome(
        _zlib_only, payload, limit, GZIP
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            b"this is not gzip",
            "cannot inflate body: Error -3 while decompressing data: incorrect header check",
        ),
        (
            gzip.compress(b"x" * 100, mtime=0)[:-8]
            + b"\0" * 4
            + gzip.compress(b"x" * 100, mtime=0)[-4:],
            "cannot inflate body: Error -3 while decompressing data: incorrect data check",
        ),
    ],
)
def test_errors_keep_zlibs_message(payload: bytes, message: str) -> None:
    with pytest.raises(WireError) as refused:
        wire.decompress(payload, 1000)
    assert (refused.value.reason, str(refused.value)) == ("bad_compression", message)
