"""`enroll` against a real Puppet CA (Debian's puppetserver, one per test session)."""

from __future__ import annotations

import asyncio
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import nats
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from harness import new_poller, poller_config, running
from puppetserver import AUTOSIGN_DOMAIN, PuppetServer
from servers import NatsServer, Target, async_wait_for, wait_for
from testca import nats_tls_block

from prometheus_streams import wire
from prometheus_streams.config import TLSConfig
from prometheus_streams.security import certs
from prometheus_streams.security.enroll import EnrollOptions, enroll
from prometheus_streams.security.puppetca import CARefusedError, PuppetCA
from prometheus_streams.security.tls import client_context


def _name(signed_at_once: bool = False) -> str:
    base = f"node-{uuid.uuid4().hex[:10]}"
    return f"{base}.{AUTOSIGN_DOMAIN}" if signed_at_once else f"{base}.example.net"


def _options(puppet_ca: PuppetServer, name: str, ssl_dir: Path, **extra: object) -> EnrollOptions:
    values: dict[str, object] = {
        "identity": name,
        "ssl_dir": ssl_dir,
        "ca_host": "127.0.0.1",
        "ca_port": puppet_ca.port,
        "poll_interval": 0.2,
        "progress_every": 0.0,
        "key_size": 2048,
    }
    values.update(extra)
    return EnrollOptions(**values)  # type: ignore[arg-type]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prometheus_streams", "enroll", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_enroll_waits_until_signed_and_writes_the_puppet_layout(
    puppet_ca: PuppetServer, tmp_path: Path
) -> None:
    name = _name()
    ssl_dir = tmp_path / "ssl"
    said: list[str] = []
    task = asyncio.create_task(
        enroll(_options(puppet_ca, name, ssl_dir), said.append, asyncio.Event())
    )
    await async_wait_for(
        lambda: puppet_ca.has_request(name) or task.done(), message="no request reached the CA"
    )
    assert not task.done(), task.exception() if task.done() else None
    await async_wait_for(lambda: any("waiting for the CA to sign" in s for s in said))
    # Still waiting after several polls: the CA answers 404 until an operator signs.
    assert not (ssl_dir / "certs" / f"{name}.pem").exists()
    await asyncio.to_thread(puppet_ca.sign, name)
    result = await asyncio.wait_for(task, timeout=60)
    assert not result.already

    cert_file = ssl_dir / "certs" / f"{name}.pem"
    key_file = ssl_dir / "private_keys" / f"{name}.pem"
    assert (ssl_dir / "certs" / "ca.pem").read_bytes() == puppet_ca.ca_cert_file.read_bytes()
    assert (ssl_dir / "crl.pem").read_bytes().startswith(b"-----BEGIN X509 CRL-----")
    assert (ssl_dir / "public_keys" / f"{name}.pem").exists()
    assert not (ssl_dir / "certificate_requests" / f"{name}.pem").exists()
    assert _mode(key_file) == 0o640
    assert _mode(ssl_dir / "private_keys") == 0o750
    assert _mode(cert_file) == 0o644
    assert _mode(ssl_dir / "certs") == 0o755

    cert = certs.load_certificates(cert_file)[0]
    assert certs.matches(cert, certs.load_private_key(key_file))
    assert certs.subject_name(cert) == name
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [name]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
    assert result.fingerprint == certs.fingerprint(cert)
    ca_print = certs.fingerprint(certs.load_certificates(puppet_ca.ca_cert_file)[0])
    assert any(ca_print in s and "not pinned" in s for s in said)
    assert any(f"puppetserver ca sign --certname {name}" in s for s in said)

    # The same command again does nothing and touches nothing.
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in ssl_dir.rglob("*") if p.is_file()}
    again = await enroll(_options(puppet_ca, name, ssl_dir), said.append, asyncio.Event())
    assert again.already
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in ssl_dir.rglob("*") if p.is_file()}
    assert after == before


def test_cli_enrolls_an_autosigned_name_with_a_pinned_fingerprint(
    puppet_ca: PuppetServer, tmp_path: Path
) -> None:
    name = _name(signed_at_once=True)
    pin = certs.fingerprint(certs.load_certificates(puppet_ca.ca_cert_file)[0])
    result = _cli(
        name, "--dir", str(tmp_path / "ssl"), "--ca", puppet_ca.address, "--ca-fingerprint", pin
    )
    assert result.returncode == 0, result.stderr
    assert "matches the pinned fingerprint" in result.stdout
    assert f"wrote {tmp_path / 'ssl' / 'certs' / name}.pem" in result.stdout
    assert result.stderr == ""


def test_cli_refuses_a_ca_with_another_fingerprint(puppet_ca: PuppetServer, tmp_path: Path) -> None:
    result = _cli(
        _name(True),
        "--dir",
        str(tmp_path / "ssl"),
        "--ca",
        puppet_ca.address,
        "--ca-fingerprint",
        "AB" * 32,
    )
    assert result.returncode == 1
    assert "is not the pinned AB:AB:" in result.stderr
    assert "refusing to trust this CA" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ssl" / "certs" / "ca.pem").exists()
    assert list((tmp_path / "ssl" / "private_keys").iterdir()) == []


async def test_cli_same_name_with_another_key_is_an_error(
    puppet_ca: PuppetServer, tmp_path: Path
) -> None:
    name = _name(signed_at_once=True)
    # In-process with a 2048-bit key where the CLI is not what is tested: 4096 bits is slow.
    await enroll(_options(puppet_ca, name, tmp_path / "a"), lambda _: None, asyncio.Event())
    second = _cli(name, "--dir", str(tmp_path / "b"), "--ca", puppet_ca.address)
    assert second.returncode == 1
    assert "made for another key" in second.stderr
    assert f"puppetserver ca clean --certname {name}" in second.stderr
    assert not (tmp_path / "b" / "certs" / f"{name}.pem").exists()


def test_cli_ctrl_c_stops_cleanly_and_a_rerun_reuses_the_key(
    puppet_ca: PuppetServer, tmp_path: Path
) -> None:
    name = _name()
    ssl_dir = tmp_path / "ssl"
    args = [name, "--dir", str(ssl_dir), "--ca", puppet_ca.address]
    proc = subprocess.Popen(
        [sys.executable, "-m", "prometheus_streams", "enroll", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: puppet_ca.has_request(name) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert "waiting for the CA to sign" in out
    assert "interrupted" in err and "run the same command again" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    key_file = ssl_dir / "private_keys" / f"{name}.pem"
    key = key_file.read_bytes()

    puppet_ca.sign(name)
    rerun = _cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"reusing the private key {key_file}" in rerun.stdout
    assert key_file.read_bytes() == key
    cert = certs.load_certificates(ssl_dir / "certs" / f"{name}.pem")[0]
    assert certs.matches(cert, certs.load_private_key(key_file))


def test_cli_gives_up_after_the_wait_limit(puppet_ca: PuppetServer, tmp_path: Path) -> None:
    name = _name()
    result = _cli(name, "--dir", str(tmp_path / "ssl"), "--ca", puppet_ca.address, "--wait", "2s")
    assert result.returncode == 1
    assert f"the CA did not sign {name} within 2s" in result.stderr
    assert "Traceback" not in result.stderr
    assert puppet_ca.has_request(name)


async def test_cli_refuses_to_replace_a_mismatching_certificate(
    puppet_ca: PuppetServer, tmp_path: Path
) -> None:
    one, two = _name(True), _name(True)
    dirs = {one: tmp_path / "one", two: tmp_path / "two"}
    for name, ssl_dir in dirs.items():
        await enroll(_options(puppet_ca, name, ssl_dir), lambda _: None, asyncio.Event())
    # Put two's certificate where one's belongs: it does not match one's key.
    wrong = dirs[one] / "certs" / f"{one}.pem"
    wrong.write_bytes((dirs[two] / "certs" / f"{two}.pem").read_bytes())
    result = _cli(one, "--dir", str(dirs[one]), "--ca", puppet_ca.address)
    assert result.returncode == 1
    assert "does not match the private key" in result.stderr
    assert "not replacing anything" in result.stderr
    assert wrong.read_bytes() == (dirs[two] / "certs" / f"{two}.pem").read_bytes()


async def test_real_ca_refusals_reach_the_operator(puppet_ca: PuppetServer, tmp_path: Path) -> None:
    """What the CA says for bad requests, as enroll reports it (facts of puppetserver 7.9)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())

    def csr(cn: str) -> bytes:
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]))
            .sign(key, hashes.SHA256())
        )
        return request.public_bytes(serialization.Encoding.PEM)

    async with PuppetCA("127.0.0.1", puppet_ca.port) as ca:
        (tmp_path / "ca.pem").write_bytes(await ca.ca_certificate())
        ca.trust(str(tmp_path / "ca.pem"))
        with pytest.raises(CARefusedError) as upper:
            await ca.submit("Upper", csr("Upper"))
        assert upper.value.status == 400
        assert "Certificate names must be lower case" in upper.value.reason
        with pytest.raises(CARefusedError) as mismatch:
            await ca.submit("someone-else", csr("not-someone-else"))
        assert mismatch.value.status == 400
        name = _name()
        await ca.submit(name, csr(name))
        with pytest.raises(CARefusedError) as pending:
            await ca.submit(name, csr(name))
        assert "already has a requested certificate" in pending.value.reason
        assert await ca.certificate(name) is None


async def test_poller_with_puppet_scheme_publishes_into_a_nats_using_the_puppet_ca(
    puppet_ca: PuppetServer, tmp_path: Path, target: Target
) -> None:
    # The server's certificate comes from the Puppet CA too: enroll `localhost`, autosigned.
    with puppet_ca.autosign_file.open("a") as autosign:
        autosign.write("localhost\n")
    server_dir = tmp_path / "server-ssl"
    stop = asyncio.Event()
    await enroll(_options(puppet_ca, "localhost", server_dir), lambda _: None, stop)
    identity = _name(signed_at_once=True)
    poller_dir = tmp_path / "poller-ssl"
    await enroll(_options(puppet_ca, identity, poller_dir), lambda _: None, stop)

    block = nats_tls_block(
        server_dir / "certs" / "ca.pem",
        server_dir / "certs" / "localhost.pem",
        server_dir / "private_keys" / "localhost.pem",
    )
    with NatsServer(tmp_path / "nats", extra_config=block) as server:
        url = f"tls://localhost:{server.port}"
        jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
        cfg = poller_config(
            tmp_path,
            url,
            jobs,
            identity=identity,
            tls={"scheme": "puppet", "ssl_dir": str(poller_dir)},
        )
        poller, _ = new_poller(cfg)
        tls = TLSConfig(scheme="puppet", identity=identity, ssl_dir=str(poller_dir))
        async with running(poller):
            nc = await nats.connect(url, tls=client_context(tls, "test"))
            try:
                js = nc.jetstream()

                async def stored() -> bool:
                    try:
                        info = await js.stream_info("PROMETHEUS")
                    except nats.js.errors.NotFoundError:
                        return False
                    return bool(info.state.messages)

                await async_wait_for(stored, message="the poller published nothing")
                subject = wire.subject_for("prometheus", identity, "node", "web-1")
                message = await js.get_last_msg("PROMETHEUS", subject)
            finally:
                await nc.close()
    assert message.headers is not None
    publisher = wire.escape_token(identity)
    assert message.headers["Nats-Msg-Id"].startswith(f"{publisher}/node/web-1/")
