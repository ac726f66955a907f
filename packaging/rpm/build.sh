#!/usr/bin/env bash
# Build the RPM of the current version (prometheus_streams.__version__) into dist/.
#
# Usage: packaging/rpm/build.sh [--wheelhouse DIR] [--release N] [--outdir DIR]
#   --wheelhouse DIR  reuse (or fill) this wheel directory instead of a fresh one
#   --release N       RPM release number (default 1)
#   --outdir DIR      where the .rpm goes (default dist/)
# Environment: PYTHON, the absolute path of the interpreter the packaged venv
# is made for (default /usr/bin/python3.11; the RPM requires that file on the
# target), and GLIBC, the oldest glibc the binary wheels may need (default 2.28:
# EL8 and later).
#
# Needs rpmbuild (Debian: apt-get install rpm) and PyPI for the wheels. The
# wheels are built first; the spec installs them into the venv with --no-index.
# Every version comes from constraints.txt (scripts/lock.sh refreshes it), so
# building the same commit again gives the same wheels.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/packaging/rpm"

wheelhouse="" release=1 outdir="$root/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --wheelhouse) wheelhouse="$2"; shift 2 ;;
    --release) release="$2"; shift 2 ;;
    --outdir) outdir="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

command -v rpmbuild >/dev/null || { echo "build.sh: rpmbuild not found (apt-get install rpm)" >&2; exit 1; }
python="${PYTHON:-/usr/bin/python3.11}"
[ -x "$python" ] || { echo "build.sh: $python not found (set PYTHON)" >&2; exit 1; }
glibc="${GLIBC:-2.28}"

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/prometheus_streams/__init__.py")"
[ -n "$version" ] || { echo "build.sh: no __version__ in prometheus_streams/__init__.py" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/prometheus-streams-rpm.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$outdir"
[ -n "$wheelhouse" ] || wheelhouse="$work/wheels"
mkdir -p "$wheelhouse"
wheelhouse="$(cd "$wheelhouse" && pwd)"

# pip from a throwaway venv of the target interpreter.
echo "build.sh: building wheels of prometheus-streams $version into $wheelhouse"
"$python" -m venv "$work/pip"
pip=("$work/pip/bin/python" -m pip --quiet --disable-pip-version-check)
constraints="$root/constraints.txt"
[ -f "$constraints" ] || { echo "build.sh: $constraints missing (scripts/lock.sh makes it)" >&2; exit 1; }
"${pip[@]}" install -c "$constraints" --upgrade pip wheel
# Every wheel as the builder would pick it (this also turns sdist-only pure
# Python dependencies into wheels)...
# (setuptools reuses build/ in the tree: a stale _speedups .so there would be
# packaged even if compiling failed now)
rm -rf "$root/build"
"${pip[@]}" wheel -c "$constraints" --build-constraint "$constraints" \
  --wheel-dir "$work/host-wheels" "$root"
# ...then the binary ones again for the target, not for this builder: the
# interpreter's version and the oldest glibc we support (manylinux tags).
pyver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
arch="$(uname -m)"
platforms=()
for minor in $(seq "${glibc#2.}" -1 5); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
platforms+=(--platform "manylinux2014_$arch" --platform "manylinux1_$arch")
# Our wheel holds the receiver's C pass, built here for $python. pip makes it
# optional, so a builder without gcc or Python's headers would quietly ship
# the slow path: refuse that. The .so needs nothing but libc (memchr and
# memcpy, GLIBC_2.14), so it is tagged for the oldest glibc we support; the
# packaging test checks the RPM's glibc requirements.
ours="$work/host-wheels/prometheus_streams-$version-cp$pyver-cp$pyver-linux_$arch.whl"
tag="manylinux_${glibc/./_}_$arch"
# The wheel is platform-tagged even when the optional build failed: look
# inside (through a file: grep -q closing a pipe early would fail it).
[ -f "$ours" ] && "$python" -m zipfile -l "$ours" >"$work/our-wheel-files" || true
if ! grep -q "prometheus_streams/_speedups\.cpython-$pyver-.*\.so" "$work/our-wheel-files" 2>/dev/null; then
  echo "build.sh: prometheus-streams built without its C pass (install gcc and the headers" \
       "of $python, Debian: python3.11-dev)" >&2
  exit 1
fi
"$work/pip/bin/python" -m wheel tags --remove --platform-tag "$tag" "$ours" >/dev/null
# A stale wheel of the same version would win over the current source.
rm -f "$wheelhouse"/prometheus_streams-*.whl
"${pip[@]}" download -c "$constraints" --only-binary=:all: --implementation cp --python-version "$pyver" \
  --abi "cp$pyver" "${platforms[@]}" --find-links "$work/host-wheels" --dest "$wheelhouse" \
  "${ours%-linux_$arch.whl}-$tag.whl"

# The spec's sources: its own files plus the packaging doc.
src="$work/sources"
mkdir -p "$src"
cp "$here"/prometheus-streams-poller.service "$here"/prometheus-streams-receiver.service \
   "$here"/prometheus-streams.yaml "$here"/prometheus-streams.logrotate "$constraints" "$src/"
cp "$root/docs/packaging.md" "$src/"

echo "build.sh: rpmbuild"
# --nodeps: no RPM database of build dependencies on a Debian builder.
rpmbuild -bb --nodeps --quiet \
  --define "_topdir $work/rpmbuild" \
  --define "_sourcedir $src" \
  --define "_rpmdir $work/rpms" \
  --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
  --define "version $version" \
  --define "release_number $release" \
  --define "wheelhouse $wheelhouse" \
  --define "python $python" \
  "$here/prometheus-streams.spec"

rpm_file="$(find "$work/rpms" -name "prometheus-streams-$version-*.rpm" | head -n 1)"
[ -n "$rpm_file" ] || { echo "build.sh: rpmbuild left no RPM" >&2; exit 1; }
mv -f "$rpm_file" "$outdir/"
echo "$outdir/$(basename "$rpm_file")"
