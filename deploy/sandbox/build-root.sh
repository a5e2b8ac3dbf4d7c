#!/usr/bin/env bash
# Builds the sandbox's Asterisk: a Debian sid root (Debian 12 ships no Asterisk)
# with Asterisk 22 and its English and Spanish sounds. Idempotent: a root that
# already has asterisk is reused, so this costs nothing after the first run.
#
#   deploy/sandbox/build-root.sh [ROOT]        (default /var/cache/hotline-sandbox/root)
set -euo pipefail

root=${1:-${HOTLINE_SANDBOX__ROOT:-/var/cache/hotline-sandbox/root}}  # the setting sandbox.root
marker="$root/.hotline-root-complete"
packages=(asterisk asterisk-modules asterisk-core-sounds-en asterisk-core-sounds-es
          asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-moh-opsound-wav)

if [[ -f $marker ]]; then
    exit 0
fi

# Use the mirror apt on this host already uses: it is the one the network allows.
mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
         | grep -oE 'https?://[^ ]+/debian/?$' | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

command -v debootstrap >/dev/null || {
    echo "build-root: debootstrap is missing (make deps installs it)" >&2; exit 1; }

if [[ ! -x $root/usr/bin/apt-get ]]; then
    echo "build-root: debootstrap sid into $root from $mirror"
    rm -rf "$root"
    mkdir -p "$(dirname "$root")"
    debootstrap --variant=minbase sid "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
        tail -n 30 "$root.debootstrap.log" >&2; exit 1; }
fi

echo "build-root: installing ${packages[*]}"
# The mirror's sid Release file can be past its Valid-Until date.
chroot "$root" apt-get -qq -o Acquire::Check-Valid-Until=false update
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -qq -y --no-install-recommends \
    -o Dpkg::Use-Pty=0 install "${packages[@]}" >/dev/null
chroot "$root" asterisk -V
touch "$marker"
