"""A small client of the Puppet CA HTTP API (`/puppet-ca/v1`)."""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Self
from urllib.parse import quote

import aiohttp

from prometheus_streams.transport.bounded import read_at_most

DEFAULT_PORT = 8140
# A CA certificate chain, a host certificate or a CRL is a few KiB; refuse floods.
MAX_ANSWER_BYTES = 1024 * 1024


class CAError(Exception):
    """The CA could not be asked, or gave an answer we cannot use."""


class CAUnavailableError(CAError):
    """The CA did not answer usefully this time (network, timeout, 5xx); retrying may help."""


class CARefusedError(CAError):
    """The CA answered 4xx with a reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def parse_address(text: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or `https://host:port` -> (host, port)."""
    value = text.strip()
    if value.startswith("https://"):
        value = value[len("https://") :].rstrip("/")
    if not value or "/" in value or any(c.isspace() for c in value):
        raise ValueError(f"not HOST[:PORT]: {text!r}")
    host, port_text = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(f"unclosed [ in {text!r}")
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"not HOST[:PORT]: {text!r}")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port_text)


def _clean(text: str, limit: int = 300) -> str:
    """Server text made safe for one log line."""
    printable = "".join(c if c.isprintable() else " " for c in text).strip()
    return printable[:limit] + ("..." if len(printable) > limit else "")


class PuppetCA:
    """The five things we ask a Puppet CA; one aiohttp session, one trust setting."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, timeout: float = 30.0) -> None:
        netloc = f"[{host}]" if ":" in host else host
        self.url = f"https://{netloc}:{port}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._trust: ssl.SSLContext | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def trust(self, ca_file: str) -> None:
        """From now on verify the CA's server certificate (and host name) with `ca_file`."""
        self._trust = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)

    async def ca_certificate(self) -> bytes:
        """GET certificate/ca without verification: on first contact there is no trust yet."""
        body = await self._get("/puppet-ca/v1/certificate/ca", verify=False)
        if body is None:
            raise CAError(f"{self.url}: the CA has no certificate/ca (is this a Puppet CA?)")
        return body

    async def crl(self) -> bytes | None:
        """The CA's revocation list, None when it has none."""
        return await self._get("/puppet-ca/v1/certificate_revocation_list/ca")

    async def certificate(self, name: str) -> bytes | None:
        """The signed certificate of `name`, None while there is none (404)."""
        return await self._get(f"/puppet-ca/v1/certificate/{quote(name, safe='')}")

    async def submit(self, name: str, csr_pem: bytes) -> None:
        """PUT certificate_request/<name>; CARefusedError carries the CA's reason."""
        await self._request(
            "PUT",
            f"/puppet-ca/v1/certificate_request/{quote(name, safe='')}",
            data=csr_pem,
            headers={"Content-Type": "text/plain"},
        )

    async def _get(self, path: str, verify: bool = True) -> bytes | None:
        try:
            return await self._request("GET", path, verify=verify)
        except CARefusedError as exc:
            if exc.status == 404:
                return None
            raise

    async def _request(
        self,
        method: str,
        path: str,
        verify: bool = True,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        assert self._session is not None, "use `async with PuppetCA(...)`"
        if verify and self._trust is None:
            raise RuntimeError("trust() the CA before asking it anything but its certificate")
        url = self.url + path
        ssl_arg: ssl.SSLContext | bool = self._trust if verify and self._trust else False
        try:
            async with self._session.request(
                method,
                url,
                data=data,
                headers={"Accept": "text/plain", **(headers or {})},
                ssl=ssl_arg,
                allow_redirects=False,
            ) as response:
                body = await read_at_most(response.content, MAX_ANSWER_BYTES)
                status = response.status
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CAError(
                f"{url}: the CA's server certificate does not verify with the saved CA "
                f"certificate: {exc.certificate_error}"
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise CAError(f"{url}: TLS failed: {exc}") from None
        except TimeoutError:  # aiohttp's timeouts are ClientErrors too: this goes first
            raise CAUnavailableError(f"{url}: no answer within {self._timeout.total:g}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise CAUnavailableError(f"{url}: cannot reach the Puppet CA: {reason}") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise CAError(f"{url}: answer larger than {MAX_ANSWER_BYTES} bytes; not a Puppet CA?")
        text = _clean(body.decode("utf-8", "replace"))
        if status >= 500:
            raise CAUnavailableError(f"{url}: the CA failed with {status}: {text}")
        if status >= 300:
            raise CARefusedError(status, text, f"{url}: the CA refused with {status}: {text}")
        return body
