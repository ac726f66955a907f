#!/usr/bin/env bash
# Build and check the RPM and the Puppet module with the real tools.
# Usage: scripts/test-packaging.sh [rpm|puppet|all]   (default all)
# Installs its Debian packages when missing (root), then fails loudly on any
# problem. Needs root also for the mount namespace used to run the installed
# RPM as if it were at / (unshare -m, overlay mounts; nothing leaks out).
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir="$(pwd)"
what="${1:-all}"

pkgs=(rpm systemd puppet-agent puppet-lint puppet-module-puppetlabs-stdlib
      ruby-rspec-puppet ruby-puppetlabs-spec-helper rake metadata-json-lint)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "test-packaging: need root to install: ${missing[*]}" >&2; exit 1; }
  echo "== apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq -o DPkg::Lock::Timeout=600
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/prometheus-streams-packaging.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' prometheus_streams/__init__.py)"
units=(prometheus-streams-poller.service prometheus-streams-receiver.service)

# Run a command with DIR's /opt and /usr/bin laid over the real ones, in a
# private mount namespace: the installed files resolve exactly as on a target
# (/usr/bin/prometheus-streams -> /opt/prometheus-streams/bin/..., whose
# shebang names /opt/prometheus-streams/bin/python).
as_installed() {
  local dir="$1"; shift
  unshare --mount --propagation private -- bash -c '
    set -e
    mount -t overlay overlay -o "lowerdir=$0/usr/bin:/usr/bin" /usr/bin
    mount -t overlay overlay -o "lowerdir=$0/opt:/opt" /opt
    exec "$@"' "$dir" "$@"
}

# A scratch root that knows the package's user (uid/gid 990 there), so rpm sets real owners.
make_root() {
  local dir="$1"
  mkdir -p "$dir/etc"
  printf 'root:x:0:0:root:/root:/bin/bash\nprometheus-streams:x:990:990::/var/lib/prometheus-streams:/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nprometheus-streams:x:990:\n' >"$dir/etc/group"
}

test_rpm() {
  local rpm_file="dist/prometheus-streams-$version-1.$(uname -m).rpm"
  step "rpm: build (packaging/rpm/build.sh)"
  rm -f "$rpm_file"
  bash packaging/rpm/build.sh --wheelhouse "$tmp/wheels" >"$tmp/build.log" 2>&1 \
    || { tail -40 "$tmp/build.log"; fail "build.sh failed"; }
  [ -f "$rpm_file" ] || fail "no $rpm_file"
  echo "built $rpm_file ($(du -h "$rpm_file" | cut -f1))"

  step "rpm: inspect"
  rpm -qpi "$rpm_file" >"$tmp/qpi"
  grep -Eq "^Name +: prometheus-streams$" "$tmp/qpi" || fail "-qpi: name"
  grep -Eq "^Version +: $version$" "$tmp/qpi" || fail "-qpi: version"
  grep -Eq "^Architecture: $(uname -m)$" "$tmp/qpi" || fail "-qpi: arch"
  rpm -qpl "$rpm_file" >"$tmp/qpl"
  for f in /usr/bin/prometheus-streams /opt/prometheus-streams/bin/python \
           /opt/prometheus-streams/bin/prometheus-streams /opt/prometheus-streams/pyvenv.cfg \
           /usr/lib/systemd/system/prometheus-streams-poller.service \
           /usr/lib/systemd/system/prometheus-streams-receiver.service \
           /etc/prometheus-streams/prometheus-streams.yaml /etc/logrotate.d/prometheus-streams \
           /var/log/prometheus-streams /var/lib/prometheus-streams; do
    grep -qxF "$f" "$tmp/qpl" || fail "-qpl: $f missing"
  done
  grep -q "/opt/prometheus-streams/lib/python3.*/site-packages/prometheus_streams/cli.py" "$tmp/qpl" \
    || fail "-qpl: application not in the venv"
  grep -q "/bin/pip" "$tmp/qpl" && fail "-qpl: pip left in the venv"
  [ "$(rpm -qpc "$rpm_file" | sort | tr '\n' ' ')" = \
    "/etc/logrotate.d/prometheus-streams /etc/prometheus-streams/prometheus-streams.yaml " ] \
    || fail "-qpc: $(rpm -qpc "$rpm_file")"
  # (to files, not pipes: grep -q closing early would fail the pipeline)
  rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file" >"$tmp/flags"
  grep -qx "cn /etc/prometheus-streams/prometheus-streams.yaml" "$tmp/flags" || fail "config is not %config(noreplace)"
  rpm -qp --scripts "$rpm_file" >"$tmp/scripts"
  grep -q "useradd --system" "$tmp/scripts" || fail "--scripts: no system user"
  grep -q "daemon-reload" "$tmp/scripts" || fail "--scripts: no daemon-reload"
  grep -q "preset ${units[*]}" "$tmp/scripts" || fail "--scripts: no preset on install"
  grep -q "disable --now ${units[*]}" "$tmp/scripts" || fail "--scripts: no stop+disable on removal"
  grep -q "try-restart ${units[*]}" "$tmp/scripts" || fail "--scripts: no try-restart on upgrade"
  rpm -qpR "$rpm_file" >"$tmp/requires"
  grep -qx "/usr/bin/python3.11" "$tmp/requires" || fail "-qpR: no interpreter requirement"
  if grep -E "GLIBC_2\.(29|[3-9][0-9])" "$tmp/requires"; then
    fail "-qpR: a wheel needs a glibc newer than 2.28 (EL8)"
  fi

  step "rpm: install into a scratch root"
  local sr="$tmp/root"
  make_root "$sr"
  rpm -i --root "$sr" --nodeps --noscripts "$rpm_file" 2>&1 | grep -v "use Alien\|assuming you know" || true
  rpm --root "$sr" -q prometheus-streams >/dev/null || fail "not installed in scratch root"
  grep -rlF "BUILDROOT" "$sr/opt" && fail "buildroot paths in the installed venv"
  [ "$(stat -c %u:%g:%a "$sr/var/log/prometheus-streams")" = "990:990:750" ] \
    || fail "log dir owner/mode: $(stat -c %u:%g:%a "$sr/var/log/prometheus-streams")"
  [ "$(stat -c %u:%g:%a "$sr/var/lib/prometheus-streams")" = "990:990:750" ] \
    || fail "state dir owner/mode"
  [ "$(stat -c %u:%g:%a "$sr/etc/prometheus-streams/prometheus-streams.yaml")" = "0:990:640" ] \
    || fail "config owner/mode"

  step "rpm: run the scratch root's venv"
  # The venv is relocatable as far as Python goes: bin/python finds
  # pyvenv.cfg beside it wherever it lies. Only scripts' shebangs name /opt.
  out="$("$sr/opt/prometheus-streams/bin/python" -m prometheus_streams version)"
  [ "$out" = "prometheus-streams $version" ] || fail "venv python: version printed '$out'"
  "$sr/opt/prometheus-streams/bin/python" -c 'import prometheus_streams._speedups' \
    || fail "venv python: the receiver's C pass (prometheus_streams._speedups) does not import"
  # And exactly as installed: /usr/bin/prometheus-streams through its symlink and shebang.
  out="$(as_installed "$sr" /usr/bin/prometheus-streams version)"
  [ "$out" = "prometheus-streams $version" ] || fail "/usr/bin/prometheus-streams version printed '$out'"
  as_installed "$sr" /usr/bin/prometheus-streams \
    --config "$sr/etc/prometheus-streams/prometheus-streams.yaml" check-config >"$tmp/check" 2>&1 \
    || { cat "$tmp/check"; fail "check-config of the shipped config"; }
  grep -qx "# poller: fit" "$tmp/check" || fail "shipped config not fit for the poller"
  grep -qx "# receiver: fit" "$tmp/check" || fail "shipped config not fit for the receiver"

  step "rpm: the venv holds exactly the versions of constraints.txt"
  "$sr/opt/prometheus-streams/bin/python" - constraints.txt >"$tmp/pins" 2>&1 <<'PY' \
    || { cat "$tmp/pins"; fail "installed versions differ from constraints.txt"; }
import re, sys
from importlib import metadata
def norm(name): return re.sub(r"[-_.]+", "-", name).lower()
pins = {}
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if line:
        name, _, version = line.partition("==")
        pins[norm(name)] = version
wrong = []
for dist in metadata.distributions():
    name = norm(dist.metadata["Name"])
    if name != "prometheus-streams" and pins.get(name) != dist.version:
        wrong.append(f"{name} {dist.version} (constraints.txt: {pins.get(name, 'absent')})")
print("\n".join(wrong) or "all pinned")
sys.exit(1 if wrong else 0)
PY
  cat "$tmp/pins"

  step "rpm: systemd-analyze verify (any output fails)"
  for u in "${units[@]}"; do
    out="$(as_installed "$sr" systemd-analyze verify "$sr/usr/lib/systemd/system/$u" 2>&1)" \
      || fail "verify $u: $out"
    [ -z "$out" ] || fail "verify $u printed: $out"
    echo "$u: verified"
  done

  step "rpm: systemd-analyze security (exposure at most 1.5)"
  for u in "${units[@]}"; do
    systemd-analyze security --offline=true --threshold=15 --no-pager \
      "$sr/usr/lib/systemd/system/$u" >"$tmp/security" 2>&1 || { cat "$tmp/security"; fail "security $u"; }
    grep "Overall exposure" "$tmp/security"
  done

  step "rpm: upgrade keeps an edited config"
  bash packaging/rpm/build.sh --wheelhouse "$tmp/wheels" --release 2 --outdir "$tmp/r2" \
    >"$tmp/build2.log" 2>&1 || { tail -40 "$tmp/build2.log"; fail "build.sh --release 2"; }
  echo "# edited by the operator" >>"$sr/etc/prometheus-streams/prometheus-streams.yaml"
  rpm -U --root "$sr" --nodeps --noscripts "$tmp"/r2/*.rpm 2>&1 | grep -v "use Alien\|assuming you know" || true
  [ "$(rpm --root "$sr" -q --qf '%{RELEASE}' prometheus-streams)" = 2 ] || fail "upgrade to release 2"
  tail -1 "$sr/etc/prometheus-streams/prometheus-streams.yaml" | grep -qx "# edited by the operator" \
    || fail "upgrade replaced the edited config"
  echo "edited config kept"

  step "rpm: erase leaves no files behind but the edited config"
  rpm -e --root "$sr" --nodeps --noscripts prometheus-streams 2>&1 | grep -v "use Alien\|assuming you know" || true
  [ ! -e "$sr/opt/prometheus-streams" ] || fail "venv left after erase"
  [ -f "$sr/etc/prometheus-streams/prometheus-streams.yaml.rpmsave" ] || fail "edited config not saved as .rpmsave"
}

test_puppet() {
  local mod=puppet
  step "puppet: parser validate"
  find "$mod/manifests" "$mod/types" -name '*.pp' -print0 | xargs -0 puppet parser validate
  step "puppet: puppet-lint"
  (cd "$mod" && puppet-lint --relative --fail-on-warnings manifests types)
  step "puppet: metadata-json-lint"
  metadata-json-lint --strict-dependencies --strict-license "$mod/metadata.json"
  step "puppet: rspec-puppet"
  (cd "$mod" && rspec)

  step "puppet: puppet apply, twice"
  local mp="$tmp/modules" out="$tmp/apply"
  mkdir -p "$mp" "$out"
  ln -s "$root_dir/$mod" "$mp/prometheus_streams"
  ln -s /usr/share/puppet/modules/stdlib "$mp/stdlib"
  cat >"$tmp/site.pp" <<EOF
class { 'prometheus_streams':
  poller          => true,
  receiver        => true,
  manage_package  => false,
  manage_service  => false,
  identity        => 'dc1.example.net',
  config_file     => '$out/prometheus-streams.yaml',
  config_owner    => '$(id -un)',
  config_group    => '$(id -gn)',
  log_file        => '$out/prometheus-streams.log',
  max_age         => '90s',
  monitor_port    => 9900,
  poller_stream   => { 'urls' => 'nats://nats.dc1.example.net:4222', 'topic' => 'prometheus', 'cluster_id' => 'dc1_stream' },
  receiver_stream => { 'urls' => ['nats://nats.central.example.net:4222'], 'client_id' => 'prometheus_receiver', 'ack_wait' => '1m' },
  push_gateway    => { 'url' => 'http://pushgateway.example.net:9091', 'publisher_label' => true },
  remote_write    => [{ 'url' => 'http://vm.example.net:8428/api/v1/write', 'name' => 'vm', 'headers' => { 'X-Scope-OrgID' => 'dc1' } }],
  publisher_label => 'datacenter',
  management      => { 'name' => 'app', 'brokers' => ['choria1.example.net:4222'] },
  jobs            => { 'node' => { 'scrape_interval' => '30s', 'targets' => [{ 'name' => 'web1', 'url' => 'http://web1.dc1.example.net:9100/metrics' }] } },
}
EOF
  local args=(apply --modulepath="$mp" --detailed-exitcodes --color=false
              --vardir="$tmp/puppet-var" --confdir="$tmp/puppet-conf" --codedir="$tmp/puppet-code" "$tmp/site.pp")
  local rc
  rc=0; puppet "${args[@]}" >"$tmp/apply1" 2>&1 || rc=$?
  # facter's permission errors in a sandbox are harmless noise.
  grep -v "Facter: Permission denied" "$tmp/apply1" || true
  [ "$rc" -eq 2 ] || fail "first puppet apply: exit $rc, expected 2 (changes)"
  rc=0; puppet "${args[@]}" >"$tmp/apply2" 2>&1 || rc=$?
  grep -v "Facter: Permission denied" "$tmp/apply2" || true
  [ "$rc" -eq 0 ] || fail "second puppet apply: exit $rc, expected 0 (no changes)"

  step "puppet: check-config of the rendered file"
  .venv/bin/prometheus-streams --config "$out/prometheus-streams.yaml" check-config >"$tmp/check" 2>&1 \
    || { cat "$tmp/check"; fail "check-config of the Puppet-rendered config"; }
  grep -qx "# poller: fit" "$tmp/check" || fail "rendered config not fit for the poller"
  grep -qx "# receiver: fit" "$tmp/check" || fail "rendered config not fit for the receiver"
  echo "rendered config fit for poller and receiver"
}

case "$what" in
  rpm) test_rpm ;;
  puppet) test_puppet ;;
  all) test_rpm; test_puppet ;;
  *) echo "usage: $0 [rpm|puppet|all]" >&2; exit 2 ;;
esac
echo "test-packaging: $what OK"
