"""`enroll` error paths against a fake Puppet CA (aiohttp over TLS on port 0).

The real puppetserver is in tests/integration/test_enroll_puppet.py; this fake
shows what it will not do on request: garbage answers, hangs, 5xx, a
certificate for another key or from another CA.
"""

from __future__ import annotations

import asyncio
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from servers import async_wait_for
from testca import TestCA, cert_pem

from prometheus_streams.cli import main
from prometheus_streams.security.enroll import (
    EnrollError,
    EnrollInterruptedError,
    EnrollOptions,
    enroll,
)

NAME = "node1.example.net"


class FakeCA:
    """The Puppet CA endpoints enroll uses, with switches for misbehaviour."""

    def __init__(self, directory: Path) -> None:
        self.ca = TestCA(directory / "ca", name="Puppet CA: fake")
        self.ca_body: bytes = cert_pem(self.ca.cert)
        self.crl_status = 200
        self.csr_answer: tuple[int, str] = (200, "")
        self.not_signed_for = 0  # GETs of the certificate answered 404 before signing
        self.cert_failures: list[int] = []  # statuses answered (once each) before anything else
        self.cert_delay = 0.0
        self.cert_body: bytes | None = None  # what a signed certificate GET returns
        self.csrs: list[x509.CertificateSigningRequest] = []
        self.cert_gets = 0
        self._runner: web.AppRunner | None = None
        self.port = 0
        server = self.ca.server("fake-ca")
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_context.load_cert_chain(server.cert_file, server.key_file)

    async def _ca(self, request: web.Request) -> web.Response:
        return web.Response(body=self.ca_body, content_type="text/plain")

    async def _crl(self, request: web.Request) -> web.Response:
        if self.crl_status != 200:
            return web.Response(status=self.crl_status, text="Not Found")
        return web.Response(
            text="-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
            content_type="text/plain",
        )

    async def _csr(self, request: web.Request) -> web.Response:
        status, text = self.csr_answer
        if status == 200:
            self.csrs.append(x509.load_pem_x509_csr(await request.read()))
        return web.Response(status=status, text=text)

    async def _cert(self, request: web.Request) -> web.Response:
        self.cert_gets += 1
        if self.cert_delay:
            await asyncio.sleep(self.cert_delay)
        if self.cert_failures:
            return web.Response(status=self.cert_failures.pop(0), text="Internal Server Error")
        if not self.csrs or self.cert_gets <= self.not_signed_for:
            name = request.match_info["name"]
            return web.Response(status=404, text=f"Could not find certificate {name}")
        if self.cert_body is not None:
            return web.Response(body=self.cert_body, content_type="text/plain")
        csr = self.csrs[-1]
        cert = self.ca.sign(csr.public_key(), NAME, dns=(NAME,))
        return web.Response(body=cert_pem(cert), content_type="text/plain")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/puppet-ca/v1/certificate/ca", self._ca)
        app.router.add_get("/puppet-ca/v1/certificate_revocation_list/ca", self._crl)
        app.router.add_put("/puppet-ca/v1/certificate_request/{name}", self._csr)
        app.router.add_get("/puppet-ca/v1/certificate/{name}", self._cert)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.server_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest_asyncio.fixture
async def fake_ca(tmp_path: Path) -> AsyncIterator[FakeCA]:
    ca = FakeCA(tmp_path)
    await ca.start()
    try:
        yield ca
    finally:
        await ca.stop()


def _options(fake: FakeCA, ssl_dir: Path, **extra: object) -> EnrollOptions:
    values: dict[str, object] = {
        "identity": NAME,
        "ssl_dir": ssl_dir,
        "ca_host": "127.0.0.1",
        "ca_port": fake.port,
        "wait": 20.0,
        "poll_interval": 0.05,
        "progress_every": 0.0,
        "request_timeout": 5.0,
        "key_size": 2048,
    }
    values.update(extra)
    return EnrollOptions(**values)  # type: ignore[arg-type]


async def _enroll(fake: FakeCA, ssl_dir: Path, **extra: object) -> list[str]:
    said: list[str] = []
    await enroll(_options(fake, ssl_dir, **extra), said.append, asyncio.Event())
    return said


async def test_waits_through_404_until_signed(fake_ca: FakeCA, tmp_path: Path) -> None:
    fake_ca.not_signed_for = 5
    said = await _enroll(fake_ca, tmp_path / "ssl")
    assert fake_ca.cert_gets >= 6
    assert sum("waiting for the CA to sign" in s for s in said) >= 4
    assert (tmp_path / "ssl" / "certs" / f"{NAME}.pem").exists()
    key = tmp_path / "ssl" / "private_keys" / f"{NAME}.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o640
    (csr,) = fake_ca.csrs
    assert csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == NAME


async def test_a_request_already_pending_is_waited_for(fake_ca: FakeCA, tmp_path: Path) -> None:
    fake_ca.csr_answer = (400, f"{NAME} already has a requested certificate; ignoring it")
    # The CA holds the request an earlier run made with the key on disk.
    fake_ca.csrs.append(_csr_for_dir_key(tmp_path / "ssl"))
    fake_ca.not_signed_for = 2
    said = await _enroll(fake_ca, tmp_path / "ssl")
    assert any("already waiting on the CA" in s for s in said)
    assert any("reusing the private key" in s for s in said)
    assert (tmp_path / "ssl" / "certs" / f"{NAME}.pem").exists()


def _csr_for_dir_key(ssl_dir: Path) -> x509.CertificateSigningRequest:
    """Make the key enroll will reuse, and the request the CA would hold for it."""
    from cryptography.hazmat.primitives import hashes, serialization

    key = ec.generate_private_key(ec.SECP256R1())
    (ssl_dir / "private_keys").mkdir(parents=True)
    (ssl_dir / "private_keys" / f"{NAME}.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, NAME)]))
        .sign(key, hashes.SHA256())
    )


async def test_ca_refusal_is_reported_with_its_reason(fake_ca: FakeCA, tmp_path: Path) -> None:
    fake_ca.csr_answer = (400, f'Instance name "{NAME}" does not match requested key "x"')
    with pytest.raises(EnrollError, match=r"the CA refused the request .*does not match"):
        await _enroll(fake_ca, tmp_path / "ssl")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>It works!</html>", "no PEM certificate in it"),
        (b"", "no PEM certificate in it"),
        (b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", "no PEM certificate"),
    ],
)
async def test_garbage_ca_certificate_is_refused(
    fake_ca: FakeCA, tmp_path: Path, body: bytes, expected: str
) -> None:
    fake_ca.ca_body = body
    with pytest.raises(EnrollError, match=expected):
        await _enroll(fake_ca, tmp_path / "ssl")
    assert not (tmp_path / "ssl" / "certs" / "ca.pem").exists()
    assert list((tmp_path / "ssl" / "private_keys").iterdir()) == []


async def test_a_leaf_certificate_is_not_taken_for_the_ca(fake_ca: FakeCA, tmp_path: Path) -> None:
    fake_ca.ca_body = cert_pem(fake_ca.ca.issue("not-a-ca").cert)
    with pytest.raises(EnrollError, match="is not a CA certificate"):
        await _enroll(fake_ca, tmp_path / "ssl")


async def test_garbage_signed_certificate_is_refused(fake_ca: FakeCA, tmp_path: Path) -> None:
    fake_ca.cert_body = b"Certificate goes here"
    with pytest.raises(EnrollError, match=f"certificate/{NAME}: no PEM certificate"):
        await _enroll(fake_ca, tmp_path / "ssl")
    assert not (tmp_path / "ssl" / "certs" / f"{NAME}.pem").exists()


async def test_certificate_from_another_ca_is_refused(fake_ca: FakeCA, tmp_path: Path) -> None:
    other = TestCA(tmp_path / "other")

    fake_ca.not_signed_for = 10**6
    options = _options(fake_ca, tmp_path / "ssl")
    task = asyncio.create_task(enroll(options, lambda _: None, asyncio.Event()))
    await async_wait_for(lambda: task.done() or bool(fake_ca.csrs), message="no CSR reached the CA")
    assert not task.done(), task
    fake_ca.cert_body = cert_pem(other.sign(fake_ca.csrs[-1].public_key(), NAME))
    fake_ca.not_signed_for = 0
    with pytest.raises(EnrollError, match="is not issued by the CA in"):
        await asyncio.wait_for(task, 20)


async def test_certificate_for_another_key_is_refused(fake_ca: FakeCA, tmp_path: Path) -> None:
    fake_ca.cert_body = cert_pem(fake_ca.ca.issue(NAME).cert)
    with pytest.raises(EnrollError, match="made for another key"):
        await _enroll(fake_ca, tmp_path / "ssl")
    assert not (tmp_path / "ssl" / "certs" / f"{NAME}.pem").exists()


async def test_server_errors_while_waiting_are_retried(fake_ca: FakeCA, tmp_path: Path) -> None:
    fake_ca.cert_failures = [503, 500, 503]
    said = await _enroll(fake_ca, tmp_path / "ssl")
    assert sum("still waiting" in s for s in said) >= 2
    assert (tmp_path / "ssl" / "certs" / f"{NAME}.pem").exists()


async def test_a_hanging_ca_times_out_and_the_wait_ends(fake_ca: FakeCA, tmp_path: Path) -> None:
    fake_ca.cert_delay = 5.0
    said: list[str] = []
    options = _options(fake_ca, tmp_path / "ssl", request_timeout=0.3, wait=1.0)
    with pytest.raises(EnrollError, match=r"the CA did not sign node1.example.net within 1s"):
        await enroll(options, said.append, asyncio.Event())
    assert any("no answer within 0.3s; still waiting" in s for s in said), said


async def test_unreachable_ca_is_a_clear_error(tmp_path: Path) -> None:
    from servers import free_port

    options = EnrollOptions(
        identity=NAME, ssl_dir=tmp_path / "ssl", ca_host="127.0.0.1", ca_port=free_port()
    )
    with pytest.raises(EnrollError, match="cannot reach the Puppet CA"):
        await enroll(options, lambda _: None, asyncio.Event())


async def test_ca_server_not_certified_by_its_own_ca_is_refused(
    fake_ca: FakeCA, tmp_path: Path
) -> None:
    # The CA certificate handed out is not the one that issued the server's certificate.
    fake_ca.ca_body = cert_pem(TestCA(tmp_path / "impostor").cert)
    with pytest.raises(EnrollError, match="does not verify with the saved CA certificate"):
        await _enroll(fake_ca, tmp_path / "ssl")


async def test_stop_while_waiting_ends_cleanly_and_keeps_the_key(
    fake_ca: FakeCA, tmp_path: Path
) -> None:
    fake_ca.not_signed_for = 10**6
    stop = asyncio.Event()
    said: list[str] = []
    task = asyncio.create_task(enroll(_options(fake_ca, tmp_path / "ssl"), said.append, stop))
    await async_wait_for(
        lambda: task.done() or fake_ca.cert_gets >= 3, message="enroll never asked thrice"
    )
    assert not task.done(), task
    stop.set()
    with pytest.raises(EnrollInterruptedError, match="run the same command again"):
        await asyncio.wait_for(task, 5)
    assert (tmp_path / "ssl" / "private_keys" / f"{NAME}.pem").exists()


async def test_missing_crl_is_not_fatal(fake_ca: FakeCA, tmp_path: Path) -> None:
    fake_ca.crl_status = 404
    said = await _enroll(fake_ca, tmp_path / "ssl")
    assert any("no certificate revocation list" in s for s in said)
    assert not (tmp_path / "ssl" / "crl.pem").exists()


async def test_a_broken_key_on_disk_is_never_overwritten(fake_ca: FakeCA, tmp_path: Path) -> None:
    key = tmp_path / "ssl" / "private_keys" / f"{NAME}.pem"
    key.parent.mkdir(parents=True)
    key.write_text("precious but broken\n")
    with pytest.raises(EnrollError, match="not overwriting it"):
        await _enroll(fake_ca, tmp_path / "ssl")
    assert key.read_text() == "precious but broken\n"


async def test_ssldir_in_the_way_is_a_clear_error(fake_ca: FakeCA, tmp_path: Path) -> None:
    (tmp_path / "ssl").write_text("a file")
    with pytest.raises(EnrollError, match="cannot create the ssldir"):
        await _enroll(fake_ca, tmp_path / "ssl")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["Node1", "--dir", "x"], "Certificate names must be lower case"),
        (["../etc", "--dir", "x"], "not a certificate name"),
        (["node1", "--dir", "x", "--ca", "puppet:http"], "bad port"),
        (["node1", "--dir", "x", "--ca-fingerprint", "12:34"], "64 hex digits"),
        (["node1", "--dir", "x", "--wait", "soon"], "not a duration"),
        (["node1"], "--dir"),
    ],
)
def test_cli_usage_errors_exit_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["enroll", *args])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_cli_ca_error_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from servers import free_port

    code = main(
        ["enroll", NAME, "--dir", str(tmp_path / "ssl"), "--ca", f"127.0.0.1:{free_port()}"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: enroll {NAME}: https://127.0.0.1:")
    assert "cannot reach the Puppet CA" in err
    assert err.count("\n") == 1
