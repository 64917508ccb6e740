#!/usr/bin/env bash
# Provision the Asterisk 22 lab: a minbase Debian sid chroot (Debian 12 has no asterisk package)
# holding asterisk and its English core sounds, cached and reused across runs.
#
#   asterisk/provision.sh            build the chroot unless a matching one is cached; print its path
#   asterisk/provision.sh --path     print where the chroot lives (built or not)
#
# The cache is keyed by the package list below: change the list and the next run rebuilds.
# A build happens in a sibling temporary folder and is renamed into place only when complete,
# so an interrupted build never leaves a half-built cache behind.
set -euo pipefail

CACHE=${VERIFYLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/verifyline}
ROOT=$CACHE/asterisk-sid
SUITE=sid
PACKAGES=(asterisk asterisk-core-sounds-en-gsm asterisk-core-sounds-en-wav asterisk-moh-opsound-gsm)
# the mirror this host's apt already uses (empty: debootstrap's default)
MIRROR=${VERIFYLINE_DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
# a snapshot mirror's sid index may be "expired"
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0)
KEY="suite=$SUITE packages=${PACKAGES[*]}"

log() { echo "[provision $(date +%T)] $*" >&2; }

if [ "${1:-}" = --path ]; then echo "$ROOT"; exit 0; fi

if [ -f "$ROOT/.verifyline-ready" ] && [ "$(head -n1 "$ROOT/.verifyline-ready")" = "$KEY" ]; then
    echo "$ROOT"; exit 0
fi

[ "$(id -u)" = 0 ] || { log "building the chroot needs root (debootstrap, chroot)"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }

mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.asterisk-sid.build.XXXXXX")
cleanup() { rm -rf --one-file-system "$tmp" "$tmp.log"; }
trap cleanup EXIT
t0=$(date +%s)
log "debootstrap --variant=minbase $SUITE into $tmp (about a minute)"
if ! debootstrap --variant=minbase "$SUITE" "$tmp" ${MIRROR:+"$MIRROR"} >"$tmp.log" 2>&1; then
    tail -n 20 "$tmp.log" >&2; exit 1
fi
# no service may start inside the chroot during package installation
printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"; chmod +x "$tmp/usr/sbin/policy-rc.d"
log "apt-get install ${PACKAGES[*]} (in the chroot)"
chroot "$tmp" apt-get "${APT_OPTS[@]}" -qq update >>"$tmp.log" 2>&1 || { tail -n 20 "$tmp.log" >&2; exit 1; }
if ! DEBIAN_FRONTEND=noninteractive chroot "$tmp" apt-get "${APT_OPTS[@]}" -y -qq \
        --no-install-recommends install "${PACKAGES[@]}" >>"$tmp.log" 2>&1; then
    tail -n 30 "$tmp.log" >&2; exit 1
fi
chroot "$tmp" apt-get clean
rm -rf "$tmp"/var/lib/apt/lists/*
{ echo "$KEY"; chroot "$tmp" asterisk -V; } >"$tmp/.verifyline-ready"
# swap in the finished tree: the old cache (if any) goes only once the new one is complete
if [ -e "$ROOT" ]; then mv "$ROOT" "$tmp.old"; fi
mv "$tmp" "$ROOT"
rm -rf --one-file-system "$tmp.old"
trap - EXIT; rm -f "$tmp.log"
log "built $(sed -n 2p "$ROOT/.verifyline-ready") in $(( $(date +%s) - t0 )) s, $(du -sh --one-file-system "$ROOT" | cut -f1)"
echo "$ROOT"
