#!/usr/bin/env bash
# Run a command with a Docker engine to talk to (make test-compose):
#
#   deploy/images/with-dockerd.sh COMMAND [ARGS...]
#
# An engine that already answers (DOCKER_HOST, else VERIFYLINE_DOCKER_SOCKET) is used as it is.
# Otherwise this starts a dockerd of its own for the command and stops it afterwards, by its
# PID, whatever the command's result: no bridge and no iptables (every service uses the host
# network), its own data root (images stay cached there between runs) and socket. overlay2
# first, vfs where overlay2 cannot run. Needs root and Debian's docker.io.
set -euo pipefail

ROOT=${VERIFYLINE_DOCKER_ROOT:-/var/lib/docker-vl}
SOCKET=${VERIFYLINE_DOCKER_SOCKET:-/run/docker-vl/docker.sock}
RUN=$(dirname "$SOCKET")
log() { echo "[dockerd $(date +%T)] $*" >&2; }
answers() { DOCKER_HOST=$1 timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
if [ -n "${DOCKER_HOST:-}" ] && answers "$DOCKER_HOST"; then exec "$@"; fi
export DOCKER_HOST=unix://$SOCKET
if answers "$DOCKER_HOST"; then exec "$@"; fi

command -v dockerd >/dev/null || { log "dockerd is missing: apt-get install docker.io"; exit 1; }
mkdir -p "$ROOT" "$RUN"
pid=
stop() {
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    log "stopped dockerd $pid"
    pid=
}
trap stop EXIT
for driver in overlay2 vfs; do
    dockerd --bridge=none --iptables=false --ip6tables=false --storage-driver="$driver" \
        --exec-opt native.cgroupdriver=cgroupfs --data-root "$ROOT/$driver" \
        --exec-root "$RUN/exec" --pidfile "$RUN/dockerd.pid" -H "$DOCKER_HOST" \
        >"$ROOT/dockerd.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
        answers "$DOCKER_HOST" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if answers "$DOCKER_HOST"; then
        log "dockerd $pid ($driver, $DOCKER_HOST, data in $ROOT/$driver)"
        break
    fi
    log "dockerd with $driver did not come up: $(tail -n 3 "$ROOT/dockerd.log")"
    stop
done
[ -n "$pid" ] || { log "no dockerd could start; see $ROOT/dockerd.log"; exit 1; }
set +e
"$@"
rc=$?
set -e
exit $rc
