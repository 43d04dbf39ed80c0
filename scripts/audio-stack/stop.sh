#!/usr/bin/env bash
# Stops the private virtual audio stack started by start.sh: kills exactly the
# processes it recorded (pid files, checked to still be those daemons), then removes
# its directory. Uses $JHACK_AUDIO_DIR (default /tmp/jhack-audio-$UID), as start.sh.
# Harmless when nothing is running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

if [ ! -e "$JHACK_AUDIO_DIR" ]; then
    exit 0
fi
if [ ! -e "$JHACK_AUDIO_DIR/$MARKER" ]; then
    log "error: $JHACK_AUDIO_DIR was not made by start.sh; not touching it"
    exit 1
fi

lock="$(dirname -- "$JHACK_AUDIO_DIR")/.$(basename -- "$JHACK_AUDIO_DIR").lock"
exec 9>>"$lock"
flock -w 30 9 || { log "error: could not lock $lock"; exit 1; }

# TERM everything (reverse start order), then wait up to 2 s, then KILL stragglers.
for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    if pid="$(live_pid "${DAEMONS[$i]}")"; then
        kill -TERM "$pid" 2>/dev/null || true
    fi
done
for _ in $(seq 100); do
    alive=0
    for d in "${DAEMONS[@]}"; do
        live_pid "$d" >/dev/null && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.02
done
for d in "${DAEMONS[@]}"; do
    if pid="$(live_pid "$d")"; then
        log "$d ($pid) did not exit on TERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
done

rm -rf -- "$JHACK_AUDIO_DIR"
rm -f -- "$lock"
log "stopped and removed $JHACK_AUDIO_DIR"
