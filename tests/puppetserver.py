"""A real Puppet CA for tests: Debian's puppetserver run from a throwaway directory.

Nothing is installed here (scripts/setup.sh --test installs `puppetserver`);
nothing outside the directory is written. The jar is run directly, as the
packaged service would, with its configuration pointing into the directory,
on a free loopback port. Start-up takes 20-45 s and ~600 MB, so the test
session starts one and shares it.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from servers import HOST, _ProcessServer, free_port

PACKAGE_CONF = Path("/etc/puppet/puppetserver/conf.d")
SERVICES = Path("/etc/puppet/puppetserver/services.d")
JAR = Path("/usr/share/puppetserver/puppetserver.jar")
# Domains ending in this are signed at once (`autosign` globs only allow a leading `*.`).
AUTOSIGN_DOMAIN = "autosign.test"


class PuppetServer(_ProcessServer):
    """puppetserver with its CA, `autosign` for *.autosign.test, listening on 127.0.0.1."""

    name = "puppetserver"
    start_timeout = 300.0  # 20-45 s on two idle cores; over 2 minutes seen under load

    def __init__(self, tmp_dir: Path) -> None:
        for needed in (JAR, PACKAGE_CONF / "auth.conf", SERVICES, Path("/usr/bin/puppetserver")):
            if not needed.exists():
                raise RuntimeError(f"{needed} missing: run scripts/setup.sh --test")
        super().__init__(tmp_dir, "java")
        self.log_path = self.tmp_dir / "puppetserver-stdout.log"
        self.port = free_port()
        self.certname = "puppet-ca.test"
        self.conf_d = self.tmp_dir / "conf.d"
        self.puppet_conf = self.tmp_dir / "puppet" / "puppet.conf"
        self.cadir = self.tmp_dir / "ca"
        self.autosign_file = self.tmp_dir / "autosign.conf"
        self.started_in: float | None = None
        self._write_config()

    @property
    def address(self) -> str:
        """`host:port`, as `enroll --ca` takes it."""
        return f"{HOST}:{self.port}"

    @property
    def ca_cert_file(self) -> Path:
        """The CA's own certificate (what enroll must end up trusting)."""
        return self.cadir / "ca_crt.pem"

    def _write_config(self) -> None:
        d = self.tmp_dir
        for sub in ("conf.d", "puppet", "code", "var", "run", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        for name in ("auth.conf", "ca.conf", "web-routes.conf", "metrics.conf"):
            (self.conf_d / name).write_bytes((PACKAGE_CONF / name).read_bytes())
        (self.conf_d / "puppetserver.conf").write_text(
            "jruby-puppet: {\n"
            "    ruby-load-path: [/usr/lib/puppetserver/ruby/vendor_ruby]\n"
            "    gem-home: /var/lib/puppetserver/jruby-gems\n"
            "    gem-path: [${jruby-puppet.gem-home},"
            ' "/usr/lib/puppetserver/vendored-jruby-gems"]\n'
            f"    server-conf-dir: {d / 'puppet'}\n"
            f"    server-code-dir: {d / 'code'}\n"
            f"    server-var-dir: {d / 'var'}\n"
            f"    server-run-dir: {d / 'run'}\n"
            f"    server-log-dir: {d / 'log'}\n"
            "    max-active-instances: 1\n"
            "}\n"
            "http-client: {}\n"
            "profiler: {}\n"
        )
        (self.conf_d / "webserver.conf").write_text(
            "webserver: {\n"
            "    client-auth: want\n"
            f"    ssl-host: {HOST}\n"
            f"    ssl-port: {self.port}\n"
            "}\n"
        )
        logback = d / "logback.xml"
        logback.write_text(
            "<configuration>\n"
            '  <appender name="F" class="ch.qos.logback.core.FileAppender">\n'
            f"    <file>{d / 'log' / 'puppetserver.log'}</file>\n"
            "    <encoder><pattern>%d %-5p [%c{2}] %m%n</pattern></encoder>\n"
            "  </appender>\n"
            '  <root level="info"><appender-ref ref="F"/></root>\n'
            "</configuration>\n"
        )
        (self.conf_d / "global.conf").write_text(
            f"global: {{ logging-config: {json.dumps(str(logback))} }}\n"
        )
        self.autosign_file.write_text(f"*.{AUTOSIGN_DOMAIN}\n")
        self.puppet_conf.write_text(
            "[main]\n"
            f"certname = {self.certname}\n"
            f"ssldir = {d / 'ssl'}\n"
            f"vardir = {d / 'var'}\n"
            f"logdir = {d / 'log'}\n"
            f"rundir = {d / 'run'}\n"
            f"codedir = {d / 'code'}\n"
            # where `puppetserver ca` finds this CA
            "server = localhost\n"
            "ca_server = localhost\n"
            f"serverport = {self.port}\n"
            f"ca_port = {self.port}\n"
            "[server]\n"
            f"cadir = {self.cadir}\n"
            "dns_alt_names = localhost,IP:127.0.0.1\n"
            # a file of globs, read again on every request
            f"autosign = {self.autosign_file}\n"
        )

    def _command(self) -> list[str]:
        return [
            self.binary,
            "-Xms512m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger",
            "-jar",
            str(JAR),
            "--config",
            str(self.conf_d),
            "--bootstrap-config",
            str(SERVICES),
            "--restart-file",
            str(self.tmp_dir / "restart"),
        ]

    def _get(self, path: str) -> tuple[int, bytes] | None:
        # Readiness and test checks only: the CA's certificate is not known before it runs.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        url = f"https://{HOST}:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (OSError, urllib.error.URLError):
            return None

    def _ready(self) -> bool:
        answer = self._get("/status/v1/simple")
        return answer is not None and answer == (200, b"running")

    def start(self) -> None:
        """Start and wait until the status service says `running`; records how long it took."""
        began = time.monotonic()
        super().start()
        self.started_in = time.monotonic() - began

    def sign(self, name: str) -> None:
        """Sign a pending request as an operator would: `puppetserver ca sign`."""
        result = subprocess.run(
            [
                "/usr/bin/puppetserver",
                "ca",
                "sign",
                "--certname",
                name,
                "--config",
                str(self.puppet_conf),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"puppetserver ca sign {name} failed ({result.returncode}): "
                f"{result.stdout}{result.stderr}"
            )

    def has_request(self, name: str) -> bool:
        """True while a request for `name` waits on the CA."""
        return (self.cadir / "requests" / f"{name}.pem").exists()

    def signed(self, name: str) -> Path:
        """Where the CA keeps the certificate it signed for `name`."""
        return self.cadir / "signed" / f"{name}.pem"
