"""`enroll`: get a certificate from a Puppet CA, as `puppet ssl bootstrap --waitforcert` does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519, rsa

from prometheus_streams.config import is_puppet_certname
from prometheus_streams.security import certs
from prometheus_streams.security.certs import CertificateError, PrivateKey
from prometheus_streams.security.puppetca import (
    CAError,
    CARefusedError,
    CAUnavailableError,
    PuppetCA,
)
from prometheus_streams.security.ssldir import (
    PRIVATE_FILE_MODE,
    PUBLIC_FILE_MODE,
    SSLDir,
    write_file,
)

DEFAULT_CA = "puppet:8140"
DEFAULT_WAIT = 30 * 60.0
# Puppet's own agents generate 4096-bit RSA keys.
DEFAULT_KEY_SIZE = 4096

Say = Callable[[str], None]


class EnrollError(Exception):
    """Enrollment cannot go on; the message says why and what to do."""


class EnrollInterruptedError(EnrollError):
    """Stopped by the operator (Ctrl-C or SIGTERM) before the certificate arrived."""


def format_duration(seconds: float) -> str:
    """`30m`, `1m30s`, `2s`: whole seconds, for progress lines."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


def check_identity(name: str) -> str:
    """The certificate name, or ValueError with Puppet's rules."""
    if name != name.lower():
        raise ValueError(f"Certificate names must be lower case: {name!r}")
    if not is_puppet_certname(name) or len(name) > 255:
        raise ValueError(
            f"not a certificate name: {name!r} (use lower-case letters, digits, '.', '-', '_')"
        )
    return name


@dataclass(frozen=True)
class EnrollOptions:
    """What to enroll, where to keep it and whom to ask."""

    identity: str
    ssl_dir: Path
    ca_host: str
    ca_port: int
    fingerprint: str | None = None
    wait: float = DEFAULT_WAIT
    poll_interval: float = 10.0
    progress_every: float = 30.0
    request_timeout: float = 30.0
    key_size: int = DEFAULT_KEY_SIZE


@dataclass(frozen=True)
class Enrolled:
    """The outcome: where the certificate is and what it is."""

    cert_file: Path
    fingerprint: str
    not_after: str
    already: bool


async def enroll(options: EnrollOptions, say: Say, stop: asyncio.Event) -> Enrolled:
    """Run enrollment until done, failed, timed out or `stop` is set."""
    task = asyncio.create_task(_Enrollment(options, say).run(stop))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            # Stopped (or we were cancelled): every file is written atomically, so
            # cancelling in the middle leaves nothing half-done.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise EnrollInterruptedError(_interrupted(options))
    return task.result()


def _interrupted(options: EnrollOptions) -> str:
    return (
        f"interrupted; what was written in {options.ssl_dir} is kept (the key is reused) and a "
        "pending request stays on the CA: run the same command again to continue"
    )


class _Enrollment:
    def __init__(self, options: EnrollOptions, say: Say) -> None:
        self.o = options
        self.say = say
        self.dir = SSLDir(options.ssl_dir, options.identity)
        self.ca_certs: list[x509.Certificate] = []

    async def run(self, stop: asyncio.Event) -> Enrolled:
        try:
            self.dir.make_dirs()
        except OSError as exc:
            raise EnrollError(f"{self.o.ssl_dir}: cannot create the ssldir: {exc}") from None
        if self.dir.cert.exists():
            return self._already_enrolled()
        async with PuppetCA(self.o.ca_host, self.o.ca_port, self.o.request_timeout) as ca:
            try:
                await self._trust_ca(ca)
                await self._save_crl(ca)
                key = await self._key()
                csr = self._csr(key)
                return await self._obtain(ca, key, csr, stop)
            except CAError as exc:
                raise EnrollError(str(exc)) from None

    # -- already done ------------------------------------------------------ #

    def _already_enrolled(self) -> Enrolled:
        d = self.dir
        try:
            if not d.key.exists():
                raise EnrollError(
                    f"{d.cert} exists but its key {d.key} does not; not replacing the "
                    "certificate: remove it (and `puppetserver ca clean` it on the CA) to "
                    "enroll again"
                )
            self.ca_certs = certs.load_certificates(d.ca, "CA certificate")
            self._check_pin(self.ca_certs, str(d.ca))
            cert = certs.load_certificates(d.cert)[0]
            key = certs.load_private_key(d.key)
            self._check_cert(cert, key, str(d.cert))
        except CertificateError as exc:
            raise EnrollError(f"{exc}; not replacing anything") from None
        self.say(f"{d.cert} is already a valid certificate for {self.o.identity}: nothing to do")
        return self._result(cert, already=True)

    # -- the CA certificate ------------------------------------------------ #

    def _check_pin(self, ca_certs: list[x509.Certificate], source: str) -> None:
        if self.o.fingerprint is None:
            return
        prints = [certs.fingerprint(c) for c in ca_certs]
        if self.o.fingerprint not in prints:
            raise EnrollError(
                f"{source}: CA fingerprint {prints[0]} is not the pinned {self.o.fingerprint}; "
                "refusing to trust this CA"
            )

    async def _trust_ca(self, ca: PuppetCA) -> None:
        d = self.dir
        if d.ca.exists():
            try:
                self.ca_certs = certs.load_certificates(d.ca, "CA certificate")
            except CertificateError as exc:
                raise EnrollError(f"{exc}; remove it to download the CA certificate") from None
            self._check_pin(self.ca_certs, str(d.ca))
            self.say(f"using the CA certificate in {d.ca}")
        else:
            self.say(f"fetching the CA certificate from {ca.url}")
            pem = await ca.ca_certificate()
            try:
                ca_certs = certs.parse_certificates(pem, f"{ca.url} certificate/ca")
            except CertificateError as exc:
                raise EnrollError(f"{exc}; is this a Puppet CA?") from None
            if not all(certs.is_ca(c) for c in ca_certs):
                raise EnrollError(f"{ca.url}: certificate/ca is not a CA certificate")
            self._check_pin(ca_certs, f"{ca.url} certificate/ca")
            for cert in ca_certs:
                try:
                    certs.check_validity(cert, f"{ca.url} certificate/ca")
                except CertificateError as exc:
                    raise EnrollError(str(exc)) from None
            self.ca_certs = ca_certs
            how = "matches the pinned fingerprint" if self.o.fingerprint else "not pinned"
            self.say(
                f"CA certificate {certs.subject_name(ca_certs[0])}, SHA256 fingerprint "
                f"{certs.fingerprint(ca_certs[0])} ({how})"
            )
            if not self.o.fingerprint:
                self.say(
                    "  compare it with the CA's (on the CA: puppetserver ca list --all, or "
                    "openssl x509 -noout -fingerprint -sha256 -in <cadir>/ca_crt.pem); pin it "
                    "with --ca-fingerprint"
                )
            # Save all of it: an intermediate CA answers with its chain.
            write_file(d.ca, pem, PUBLIC_FILE_MODE)
            self.say(f"wrote {d.ca}")
        # From here on every request verifies the CA server against this CA.
        ca.trust(str(d.ca))

    async def _save_crl(self, ca: PuppetCA) -> None:
        pem = await ca.crl()
        if pem is None:
            self.say("the CA has no certificate revocation list; not writing crl.pem")
            return
        if b"-----BEGIN X509 CRL-----" not in pem:
            raise EnrollError(f"{ca.url}: certificate_revocation_list/ca is not a PEM CRL")
        write_file(self.dir.crl, pem, PUBLIC_FILE_MODE)

    # -- key and request --------------------------------------------------- #

    async def _key(self) -> PrivateKey:
        d = self.dir
        if d.key.exists():
            try:
                key = certs.load_private_key(d.key)
            except CertificateError as exc:
                raise EnrollError(f"{exc}; not overwriting it") from None
            self.say(f"reusing the private key {d.key}")
        else:
            self.say(f"generating a {self.o.key_size}-bit RSA key")
            key = await asyncio.to_thread(
                rsa.generate_private_key, public_exponent=65537, key_size=self.o.key_size
            )
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            try:
                write_file(d.key, pem, PRIVATE_FILE_MODE, exclusive=True)
            except FileExistsError:
                raise EnrollError(
                    f"{d.key} appeared while enrolling (another enroll running?); not "
                    "overwriting it, run again"
                ) from None
            self.say(f"wrote {d.key} (mode {PRIVATE_FILE_MODE:04o})")
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        write_file(d.public_key, public, PUBLIC_FILE_MODE)
        return key

    def _csr(self, key: PrivateKey) -> bytes:
        d = self.dir
        if d.csr.exists():
            try:
                old = x509.load_pem_x509_csr(d.csr.read_bytes())
                same_key = old.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                ) == certs.public_der(key)
                cn = old.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
                if same_key and cn and cn[0].value == self.o.identity:
                    return old.public_bytes(serialization.Encoding.PEM)
            except (OSError, ValueError):
                pass  # a stale or broken request is rebuilt from the key
        edwards = isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        hash_alg = None if edwards else hashes.SHA256()
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, self.o.identity)])
            )
            .sign(key, hash_alg)
        )
        pem = csr.public_bytes(serialization.Encoding.PEM)
        write_file(d.csr, pem, PUBLIC_FILE_MODE)
        return pem

    # -- the certificate --------------------------------------------------- #

    async def _obtain(
        self, ca: PuppetCA, key: PrivateKey, csr: bytes, stop: asyncio.Event
    ) -> Enrolled:
        name = self.o.identity
        try:
            pem = await ca.certificate(name)
        except CAUnavailableError as exc:
            # Submitting tells whether the CA is usable; a glitch here is not the end.
            self.say(f"warning: {exc}")
            pem = None
        if pem is None:
            await self._submit(ca, csr)
            pem = await self._wait(ca, stop)
        return self._save(pem, key, ca.url)

    async def _submit(self, ca: PuppetCA, csr: bytes) -> None:
        name = self.o.identity
        try:
            await ca.submit(name, csr)
        except CARefusedError as exc:
            if exc.status == 400 and "already has a requested certificate" in exc.reason:
                self.say(f"a request for {name} is already waiting on the CA")
                return
            if exc.status == 400 and "already has a signed certificate" in exc.reason:
                # Signed between our GET and PUT, or for another key; the wait will tell.
                return
            raise EnrollError(f"the CA refused the request for {name}: {exc.reason}") from None
        self.say(f"submitted a certificate request for {name} to {ca.url}")

    async def _wait(self, ca: PuppetCA, stop: asyncio.Event) -> bytes:
        name = self.o.identity
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.o.wait
        last_said = -self.o.progress_every
        while True:
            now = loop.time()
            if now - last_said >= self.o.progress_every:
                last_said = now
                self.say(
                    f"waiting for the CA to sign {name} "
                    f"({format_duration(now - started)} of {format_duration(self.o.wait)}); "
                    f"on the CA: puppetserver ca sign --certname {name}"
                )
            remaining = deadline - now
            if remaining <= 0:
                raise EnrollError(
                    f"the CA did not sign {name} within {format_duration(self.o.wait)}; the "
                    "request stays on the CA: sign it there, then run the same command again"
                )
            try:
                await asyncio.wait_for(stop.wait(), min(self.o.poll_interval, remaining))
            except TimeoutError:
                pass
            else:
                raise EnrollInterruptedError(_interrupted(self.o))
            try:
                pem = await ca.certificate(name)
            except CAUnavailableError as exc:
                self.say(f"warning: {exc}; still waiting")
                continue
            if pem is not None:
                return pem

    def _save(self, pem: bytes, key: PrivateKey, url: str) -> Enrolled:
        d = self.dir
        source = f"{url} certificate/{self.o.identity}"
        try:
            cert = certs.parse_certificates(pem, source)[0]
        except CertificateError as exc:
            raise EnrollError(str(exc)) from None
        if not certs.matches(cert, key):
            raise EnrollError(
                f"the CA holds a certificate for {self.o.identity} made for another key than "
                f"{d.key}; if that is expected, on the CA run: puppetserver ca clean "
                f"--certname {self.o.identity}, then enroll again"
            )
        try:
            self._check_cert(cert, key, source)
        except CertificateError as exc:
            raise EnrollError(str(exc)) from None
        write_file(d.cert, pem, PUBLIC_FILE_MODE)
        d.csr.unlink(missing_ok=True)
        result = self._result(cert, already=False)
        self.say(
            f"wrote {d.cert}: {self.o.identity}, valid until {result.not_after}, "
            f"SHA256 fingerprint {result.fingerprint}"
        )
        return result

    def _check_cert(self, cert: x509.Certificate, key: PrivateKey, source: str) -> None:
        if not certs.matches(cert, key):
            raise CertificateError(f"{source} does not match the private key {self.dir.key}")
        if not certs.issued_by_any(cert, self.ca_certs):
            raise CertificateError(f"{source} is not issued by the CA in {self.dir.ca}")
        if certs.subject_name(cert) != self.o.identity:
            raise CertificateError(
                f"{source} is for {certs.subject_name(cert)!r}, not {self.o.identity!r}"
            )
        certs.check_validity(cert, source)

    def _result(self, cert: x509.Certificate, already: bool) -> Enrolled:
        return Enrolled(
            cert_file=self.dir.cert,
            fingerprint=certs.fingerprint(cert),
            not_after=f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
            already=already,
        )
