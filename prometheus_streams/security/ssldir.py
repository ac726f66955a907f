"""The Puppet ssldir layout, shared by `scheme: puppet` and `enroll`."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

# Modes as `puppet ssl bootstrap` leaves them (Puppet 7, Debian 12).
DIR_MODE = 0o771
PUBLIC_DIR_MODE = 0o755
PRIVATE_DIR_MODE = 0o750
PUBLIC_FILE_MODE = 0o644
PRIVATE_FILE_MODE = 0o640


@dataclass(frozen=True)
class SSLDir:
    """Where Puppet keeps the CA, the host certificate and the key of one identity."""

    root: Path
    identity: str

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def private_keys(self) -> Path:
        return self.root / "private_keys"

    @property
    def public_keys(self) -> Path:
        return self.root / "public_keys"

    @property
    def requests(self) -> Path:
        return self.root / "certificate_requests"

    @property
    def ca(self) -> Path:
        return self.certs / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.certs / f"{self.identity}.pem"

    @property
    def key(self) -> Path:
        return self.private_keys / f"{self.identity}.pem"

    @property
    def public_key(self) -> Path:
        return self.public_keys / f"{self.identity}.pem"

    @property
    def csr(self) -> Path:
        return self.requests / f"{self.identity}.pem"

    @property
    def crl(self) -> Path:
        return self.root / "crl.pem"

    def make_dirs(self) -> None:
        """Create the directories with Puppet's modes; existing ones keep theirs."""
        _mkdir(self.root, DIR_MODE)
        for path in (self.certs, self.public_keys, self.requests):
            _mkdir(path, PUBLIC_DIR_MODE)
        _mkdir(self.private_keys, PRIVATE_DIR_MODE)
        _mkdir(self.root / "private", PRIVATE_DIR_MODE)


def _mkdir(path: Path, mode: int) -> None:
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        if not path.is_dir():
            raise NotADirectoryError(f"{path}: exists and is not a directory") from None
        return
    os.chmod(path, mode)  # mkdir's mode is cut by the umask


def write_file(path: Path, data: bytes, mode: int, *, exclusive: bool = False) -> None:
    """Write atomically (temp file + rename) with `mode`; `exclusive` never replaces a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if exclusive:
            # link() fails if the target exists: a key is never overwritten, even in a race.
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
