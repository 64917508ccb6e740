#!/usr/bin/env bash
# Build Verify Line's container images with no registry (none is reachable here, and a force
# often builds offline):
#
#   deploy/images/build.sh              make the base images (unless cached), then the images
#   deploy/images/build.sh --bases      only the base images; print their names
#
# Base images (each imported once, tagged by what it is made of, reused while that is the same):
#   verifyline/asterisk-base:<key>   the lab's Asterisk 22 Debian sid chroot (asterisk/provision.sh,
#                                     read only), `tar -c | docker import`
#   verifyline/debian-base:<key>     Debian 12 minbase + python3, python3-venv and postgresql,
#                                     debootstrapped once into $VERIFYLINE_CACHE/debian-bookworm
# Images (deploy/images/*.Dockerfile, base images as build ARGs: a team with a registry passes
# its own with ASTERISK_BASE= / DEBIAN_BASE=), each rebuilt only when what goes into it changed
# (a content key in the image's label verifyline.key):
#   verifyline/asterisk:$TAG   asterisk base + our prompts and the container asterisk.conf
#   verifyline/app:$TAG        debian base + the project's wheel (and its dependencies' wheels,
#                               built here with pip wheel) installed at build time, in /opt/verifyline
#   verifyline/postgres:$TAG   debian base + an entrypoint that creates the cluster on first start
#
# Environment: DOCKER (/usr/bin/docker, else docker), TAG (the project version), VERIFYLINE_CACHE, ASTERISK_BASE,
# DEBIAN_BASE, PYTHON (the python that runs `pip wheel`: .venv/bin/python, else python3).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# Debian's docker.io client where it is installed: its builder needs no buildx plugin (a newer
# client elsewhere on PATH warns that this legacy builder is deprecated)
DOCKER=${DOCKER:-$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || echo docker)}
CACHE=${VERIFYLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/verifyline}
TAG=${TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -n1)}
PYTHON=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python3)}
DEBIAN_SUITE=bookworm
DEBIAN_PACKAGES=(python3 python3-venv postgresql procps)
DEBIAN_ROOT=$CACHE/debian-$DEBIAN_SUITE
DEBIAN_KEY="suite=$DEBIAN_SUITE packages=${DEBIAN_PACKAGES[*]}"
MIRROR=${VERIFYLINE_DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}

log() { echo "[images $(date +%T)] $*" >&2; }
short() { printf '%s' "$1" | sha256sum | cut -c1-12; }
have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# --- the Debian base: debootstrapped once, cached like the Asterisk chroot ----------------------
debian_root() {
    if [ -f "$DEBIAN_ROOT/.verifyline-ready" ] &&
       [ "$(head -n1 "$DEBIAN_ROOT/.verifyline-ready")" = "$DEBIAN_KEY" ]; then
        return
    fi
    [ "$(id -u)" = 0 ] || { log "debootstrap needs root"; exit 1; }
    command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
    mkdir -p "$CACHE"
    local tmp; tmp=$(mktemp -d "$CACHE/.debian-$DEBIAN_SUITE.build.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf --one-file-system '$tmp' '$tmp.log'" EXIT
    log "debootstrap --variant=minbase $DEBIAN_SUITE with ${DEBIAN_PACKAGES[*]} (a few minutes)"
    # no service may start inside the tree while packages install (postgresql's would)
    if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${DEBIAN_PACKAGES[*]}")" \
            "$DEBIAN_SUITE" "$tmp" ${MIRROR:+"$MIRROR"} >"$tmp.log" 2>&1; then
        tail -n 20 "$tmp.log" >&2; exit 1
    fi
    # Debian's package made a cluster at install time: the postgres image makes its own
    rm -rf "$tmp"/var/lib/postgresql/*/main "$tmp"/etc/postgresql/*/main
    chroot "$tmp" apt-get clean
    rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/*.bin
    { echo "$DEBIAN_KEY"; chroot "$tmp" python3 -V; } >"$tmp/.verifyline-ready"
    if [ -e "$DEBIAN_ROOT" ]; then mv "$DEBIAN_ROOT" "$tmp.old"; fi
    mv "$tmp" "$DEBIAN_ROOT"
    rm -rf --one-file-system "$tmp.old"
    trap - EXIT; rm -f "$tmp.log"
    log "built $DEBIAN_ROOT: $(du -sh --one-file-system "$DEBIAN_ROOT" | cut -f1)"
}

# import a tree as an image unless an image of that name exists
import_tree() {  # root name [tar exclusions...]
    local root=$1 name=$2; shift 2
    if have_image "$name"; then return; fi
    log "docker import $root -> $name"
    # --one-file-system: nothing mounted into the tree (a running lab's /proc, /dev) comes along
    tar -C "$root" --one-file-system --warning=no-file-ignored "$@" -c . | "$DOCKER" import - "$name" >/dev/null
}

bases() {
    if [ -z "${ASTERISK_BASE:-}" ]; then
        local ast_root; ast_root=$(bash "$REPO/asterisk/provision.sh")
        ASTERISK_BASE=verifyline/asterisk-base:$(short "$(cat "$ast_root/.verifyline-ready")")
        # the labs' instance folders (config with secrets, logs, sockets) stay out of the image
        import_tree "$ast_root" "$ASTERISK_BASE" --exclude=./srv/verifyline --exclude=./proc/* \
            --exclude=./dev/* --exclude=./sys/* --exclude=./tmp/*
    fi
    if [ -z "${DEBIAN_BASE:-}" ]; then
        debian_root
        DEBIAN_BASE=verifyline/debian-base:$(short "$(cat "$DEBIAN_ROOT/.verifyline-ready")")
        import_tree "$DEBIAN_ROOT" "$DEBIAN_BASE" --exclude=./proc/* --exclude=./dev/* \
            --exclude=./sys/*
    fi
}

# a content key: the hash of these files' contents and names (and the base image's name)
tree_key() {  # base paths...
    local base=$1; shift
    { echo "$base"
      find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z |
          xargs -0 sha256sum | sed "s|$REPO/||"
    } | sha256sum | cut -c1-16
}

# build an image unless one of that name carries this content key (label verifyline.key)
build_image() {  # name base-arg base key context
    local name=$1 arg=$2 base=$3 key=$4 context=$5
    if [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "verifyline.key"}}' "$name" \
            2>/dev/null)" = "$key" ]; then
        log "$name is up to date (key $key)"; return
    fi
    log "docker build $name (FROM $base)"
    "$DOCKER" build -q --build-arg "$arg=$base" --label "verifyline.key=$key" -t "$name" \
        "$context" >/dev/null
}

images() {
    local stage="$REPO/var/images"
    rm -rf "$stage"; mkdir -p "$stage/asterisk/prompts" "$stage/app/wheels" "$stage/postgres"

    # asterisk: the prompts (as `lab up` installs them) and the asterisk.conf of the container
    cp "$HERE/asterisk.Dockerfile" "$stage/asterisk/Dockerfile"
    cp "$HERE/asterisk.conf" "$HERE/asterisk-healthy" "$stage/asterisk/"
    for lang in "$REPO"/ivr/prompts/*/; do
        lang=$(basename "$lang")
        mkdir -p "$stage/asterisk/prompts/$lang"
        cp "$REPO/ivr/prompts/$lang"/*.wav "$stage/asterisk/prompts/$lang/"
    done
    build_image "verifyline/asterisk:$TAG" ASTERISK_BASE "$ASTERISK_BASE" \
        "$(tree_key "$ASTERISK_BASE" "$stage/asterisk")" "$stage/asterisk"

    # app: the wheel and every dependency's wheel, built here, installed at build time; keyed
    # by the sources that go into the wheel
    cp "$HERE/app.Dockerfile" "$stage/app/Dockerfile"
    local key; key=$(tree_key "$DEBIAN_BASE" "$HERE/app.Dockerfile" "$REPO/pyproject.toml" \
        "$REPO/ivr" "$REPO/ari_app" "$REPO/ops" "$REPO/asterisk/conf")
    if [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "verifyline.key"}}' \
            "verifyline/app:$TAG" 2>/dev/null)" != "$key" ]; then
        log "pip wheel (the project and its dependencies)"
        # (the host's pip.conf may name local indexes that are absent: pip warns, harmlessly)
        "$PYTHON" -m pip wheel -q --disable-pip-version-check --wheel-dir "$stage/app/wheels" \
            "$REPO" 2> >(grep -v "^WARNING: Location" >&2)
    fi
    build_image "verifyline/app:$TAG" DEBIAN_BASE "$DEBIAN_BASE" "$key" "$stage/app"

    cp "$HERE/postgres.Dockerfile" "$stage/postgres/Dockerfile"
    cp "$HERE/postgres-entrypoint" "$stage/postgres/"
    build_image "verifyline/postgres:$TAG" DEBIAN_BASE "$DEBIAN_BASE" \
        "$(tree_key "$DEBIAN_BASE" "$stage/postgres")" "$stage/postgres"
    rm -rf "$stage"
}

t0=$(date +%s)
bases
if [ "${1:-}" = --bases ]; then
    echo "$ASTERISK_BASE"; echo "$DEBIAN_BASE"; exit 0
fi
images
log "images verifyline/{asterisk,app,postgres}:$TAG ready in $(( $(date +%s) - t0 )) s"
