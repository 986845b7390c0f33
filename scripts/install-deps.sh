#!/bin/sh
# Installs the Debian packages pymem builds and tests with, when missing, and
# any more given as arguments (`make bench` adds heaptrack and libc6-dbg).
# Needs root (or passwordless sudo) only when something is missing.
set -eu
PKGS="gcc g++ make libc6-dev libcmocka-dev libjemalloc-dev libunwind-dev libdw-dev libelf-dev libzstd-dev binutils python3 python3-dev python3-numpy python3-pytest python3-pytest-xdist python3-greenlet man-db libpython3.11-testsuite gunicorn python3-flask chromium zlib1g-dev golang-go strace $*"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "pymem: installing Debian packages:$missing"
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "pymem: need root to install:$missing" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
