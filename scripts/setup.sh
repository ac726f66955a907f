#!/usr/bin/env bash
# Install what prometheus-streams needs on Debian 12: system packages, then a venv.
# Usage: scripts/setup.sh [--test]   (--test adds pytest, mypy, ruff and nats-server)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus-pushgateway >/dev/null 2>&1 || need_apt+=(prometheus-pushgateway)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# pip builds the receiver's C pass (prometheus_streams/_speedups*.c): a compiler and Python's headers
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  >/dev/null 2>&1 || need_apt+=(python3-dev)
if [ "${1:-}" = "--test" ]; then
  # status page tests drive a real headless browser; alert rules are checked by promtool
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
  # remote-write tests write into a real VictoriaMetrics (tests/stores.py, on free loopback
  # ports; the package's own service on :8428 is not used); benchmarks run its vmagent
  command -v victoria-metrics >/dev/null 2>&1 || need_apt+=(victoria-metrics)
  # dns_sd tests resolve through a real dnsmasq, run by a fixture on a free loopback port
  command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
fi
if [ "${1:-}" = "--test" ]; then
  # `enroll` tests run a real Puppet CA: Debian's puppetserver (Java, ~600 MB), started by
  # a test fixture from a temp dir on a free port (tests/puppetserver.py), never as a service.
  command -v puppetserver >/dev/null 2>&1 || need_apt+=(puppetserver)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install Debian packages: ${need_apt[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
extra=""
if [ "${1:-}" = "--test" ]; then extra="[test]"; else extra="[demo]"; fi
echo "setup: installing prometheus-streams${extra} into .venv"
# Exact versions from constraints.txt (scripts/lock.sh refreshes it), for the build
# too (setuptools, wheel): a test venv made today matches one made last month.
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt --upgrade pip >/dev/null
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt \
  --build-constraint constraints.txt -e ".${extra}"
# The build of the C pass is optional for pip; here it must have worked.
if ! .venv/bin/python -c 'import prometheus_streams._speedups' 2>/dev/null; then
  echo "setup: prometheus_streams._speedups was not built; .venv/bin/pip install -e . shows why" >&2
  exit 1
fi

# --- packaging tests (tests/packaging, scripts/test-packaging.sh) ------------
# rpmbuild, systemd-analyze, Puppet and its linters, rspec-puppet, and
# python3.11 at /usr/bin, the interpreter the RPM's venv is made for.
if [ "${1:-}" = "--test" ]; then
  pkg_apt=()
  for p in rpm systemd puppet-agent puppet-lint puppet-module-puppetlabs-stdlib \
           ruby-rspec-puppet ruby-puppetlabs-spec-helper rake metadata-json-lint python3.11-venv python3.11-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || pkg_apt+=("$p")
  done
  if [ ${#pkg_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup: need root to install Debian packages: ${pkg_apt[*]}" >&2
      exit 1
    fi
    echo "setup: installing Debian packages for the packaging tests: ${pkg_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq -o DPkg::Lock::Timeout=600
    apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${pkg_apt[@]}" >/dev/null
  fi
fi
