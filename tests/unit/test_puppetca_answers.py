"""PuppetCA reads a CA's whole answer, however it arrives (aiohttp over TLS on port 0)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from testca import TestCA

from prometheus_streams.security.puppetca import MAX_ANSWER_BYTES, CAError, PuppetCA

# A CRL of a CA that revoked many certificates: more than one TLS record (16 KiB).
CRL = b"-----BEGIN X509 CRL-----\n" + b"QUFB" * 16 * 1024 + b"\n-----END X509 CRL-----\n"


class PiecemealCA:
    """Answers certificate/ca in pieces, the rest only after a pause, as a busy CA may."""

    def __init__(self, directory: Path, body: bytes) -> None:
        self.body = body
        self.ca = TestCA(directory / "ca", name="Puppet CA: piecemeal")
        server = self.ca.server("piecemeal-ca")
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(server.cert_file, server.key_file)
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        half = len(self.body) // 2
        await response.write(self.body[:half])
        await asyncio.sleep(0.2)  # the CA's own pause: the client sees the first half alone
        await response.write(self.body[half:])
        await response.write_eof()
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/puppet-ca/v1/certificate/ca", self._answer)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.context)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest_asyncio.fixture
async def piecemeal(tmp_path: Path) -> AsyncIterator[PiecemealCA]:
    ca = PiecemealCA(tmp_path, CRL)
    await ca.start()
    yield ca
    await ca.stop()


async def test_an_answer_in_pieces_is_read_whole(piecemeal: PiecemealCA) -> None:
    async with PuppetCA("127.0.0.1", piecemeal.port, timeout=30) as ca:
        body = await ca.ca_certificate()
    assert len(body) == len(CRL)
    assert body == CRL


async def test_an_answer_over_the_limit_in_pieces_is_refused(piecemeal: PiecemealCA) -> None:
    piecemeal.body = b"A" * (MAX_ANSWER_BYTES + 10)
    async with PuppetCA("127.0.0.1", piecemeal.port, timeout=30) as ca:
        with pytest.raises(CAError, match="answer larger than"):
            await ca.ca_certificate()
