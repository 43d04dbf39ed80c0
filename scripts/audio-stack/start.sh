#!/usr/bin/env bash
# Starts a private virtual audio stack for jhack's tests (see TESTING.md) and prints
# the environment that reaches it, as shell `export` lines:
#
#   eval "$(scripts/audio-stack/start.sh)"     # ... run tests ...
#   scripts/audio-stack/stop.sh
#
# It never touches the user's own sound server: everything lives in one private
# directory ($JHACK_AUDIO_DIR, default /tmp/jhack-audio-$UID) that is the daemons'
# XDG_RUNTIME_DIR (PipeWire and Pulse sockets), with a private D-Bus session bus and
# private XDG config/state dirs (so WirePlumber's saved defaults stay in there too).
#
# What it runs: dbus-daemon, pipewire, wireplumber, pipewire-pulse. What it makes:
#   - test_speaker: a 48 kHz stereo null sink, the default sink; an app's ALSA
#     `default` device (pipewire-alsa) plays into it; record it with
#     `parec --device=test_speaker.monitor --channels=2 --raw`;
#   - test_mic_feed: a mono null sink, and test_mic, a source remapped from its
#     monitor, the default source: `paplay --device=test_mic_feed x.wav` is what an
#     app's input stream hears (paced silence otherwise).
#
# Idempotent: when the stack in that directory is already running and healthy it is
# reused and the same environment printed; a broken one is stopped and restarted.
# stdout carries only the export lines; diagnostics go to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

timeout_s="${JHACK_AUDIO_TIMEOUT:-10}"
t0="$(date +%s%N)"

for c in dbus-daemon pipewire wireplumber pipewire-pulse pactl setsid flock timeout; do
    if ! command -v "$c" >/dev/null 2>&1; then
        log "error: '$c' not found; run scripts/install-deps.sh --test"
        exit 1
    fi
done

# Prints the export lines (the only thing on stdout).
print_env() {
    local v
    for v in XDG_RUNTIME_DIR DBUS_SESSION_BUS_ADDRESS PULSE_SERVER PULSE_COOKIE JHACK_AUDIO_DIR; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done
    echo "unset $UNSET_VARS"
    echo 'export JHACK_TEST_AUDIO=1'
}

elapsed_ms() { echo $((($(date +%s%N) - t0) / 1000000)); }

# Waits until "$@" succeeds, polling every 20 ms, for at most $timeout_s seconds.
wait_for() {
    local what="$1"
    shift
    local deadline=$(($(date +%s%N) + timeout_s * 1000000000))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s%N)" -gt "$deadline" ]; then
            log "error: timed out after ${timeout_s}s waiting for $what"
            return 1
        fi
        sleep 0.02
    done
}

pactl_q() { timeout 5 pactl "$@"; }
info_field() { pactl_q info 2>/dev/null | sed -n "s/^$1: //p"; }
default_sink_is() { [ "$(info_field 'Default Sink')" = "$1" ]; }
default_source_is() { [ "$(info_field 'Default Source')" = "$1" ]; }
has_sink() { pactl_q list short sinks | awk '{print $2}' | grep -qx "$1"; }
has_source() { pactl_q list short sources | awk '{print $2}' | grep -qx "$1"; }

healthy() {
    local d
    for d in "${DAEMONS[@]}"; do
        live_pid "$d" >/dev/null || { log "$d is not running"; return 1; }
    done
    pactl_q info >/dev/null 2>&1 || { log "pactl info fails"; return 1; }
    if ! { has_sink test_speaker && has_sink test_mic_feed && has_source test_mic; }; then
        log "virtual devices missing"
        return 1
    fi
    if ! { default_sink_is test_speaker && default_source_is test_mic; }; then
        log "defaults are not test_speaker/test_mic"
        return 1
    fi
}

# Starts daemon $1 (args follow) in its own session, logging to logs/$1.log.
start_daemon() {
    local name="$1"
    shift
    # fd 9 (the lock) is closed so that the daemons do not hold the lock forever.
    # Private config/state: the user's ~/.config/pipewire is not read, and nothing
    # (e.g. WirePlumber's remembered default devices) is written to their home.
    env XDG_CONFIG_HOME="$JHACK_AUDIO_DIR/config" XDG_STATE_HOME="$JHACK_AUDIO_DIR/state" \
        XDG_DATA_HOME="$JHACK_AUDIO_DIR/data" \
        setsid "$name" "$@" </dev/null >>"$JHACK_AUDIO_DIR/logs/$name.log" 2>&1 9>&- &
    echo $! >"$JHACK_AUDIO_DIR/pids/$name.pid"
}

# Kills leftovers of a broken stack in the directory (only our recorded pids).
kill_leftovers() {
    local i d pid
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        d="${DAEMONS[$i]}"
        if pid="$(live_pid "$d")"; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 100); do live_pid "$d" >/dev/null || break; sleep 0.02; done
            if pid="$(live_pid "$d")"; then kill -KILL "$pid" 2>/dev/null || true; fi
        fi
    done
}

stack_env

# One start/stop at a time per directory.
lock="$(dirname -- "$JHACK_AUDIO_DIR")/.$(basename -- "$JHACK_AUDIO_DIR").lock"
exec 9>>"$lock"
flock -w 30 9 || { log "error: could not lock $lock"; exit 1; }

if [ -e "$JHACK_AUDIO_DIR/$MARKER" ]; then
    if healthy; then
        log "reusing the running stack in $JHACK_AUDIO_DIR ($(elapsed_ms) ms)"
        print_env
        exit 0
    fi
    log "the stack in $JHACK_AUDIO_DIR is broken; restarting it"
    kill_leftovers
    find "$JHACK_AUDIO_DIR" -mindepth 1 -delete
elif [ -e "$JHACK_AUDIO_DIR" ] && [ -n "$(ls -A "$JHACK_AUDIO_DIR" 2>/dev/null)" ]; then
    log "error: $JHACK_AUDIO_DIR exists, is not empty and was not made by start.sh"
    exit 1
fi

mkdir -p "$JHACK_AUDIO_DIR"
chmod 700 "$JHACK_AUDIO_DIR"
mkdir -p "$JHACK_AUDIO_DIR"/{logs,pids,config,state,data}
: >"$JHACK_AUDIO_DIR/$MARKER"

# An app's unchanged ALSA "default" must reach PipeWire (pipewire-alsa's
# 99-pipewire-default.conf); warn when it visibly does not.
if [ -e "$HOME/.asoundrc" ]; then
    log "warning: $HOME/.asoundrc exists and may redefine ALSA's default device"
fi
if command -v aplay >/dev/null 2>&1; then
    alsa_pcms="$(aplay -L 2>/dev/null || true)"
    if ! grep -q '^pipewire$' <<<"$alsa_pcms"; then
        log "warning: ALSA has no 'pipewire' device: is pipewire-alsa installed?"
    elif ! grep -A1 '^default$' <<<"$alsa_pcms" | grep -q PipeWire; then
        log "warning: ALSA's 'default' device is not PipeWire's; apps will not reach the stack"
    fi
fi

# 1. A private session bus (WirePlumber and device reservation use it).
start_daemon dbus-daemon --session --nofork --nopidfile --address="$DBUS_SESSION_BUS_ADDRESS"
wait_for "the D-Bus socket" test -S "$JHACK_AUDIO_DIR/bus"

# 2. PipeWire, its session manager and its Pulse server.
start_daemon pipewire
wait_for "the PipeWire socket" test -S "$JHACK_AUDIO_DIR/pipewire-0"
start_daemon wireplumber
start_daemon pipewire-pulse
wait_for "pipewire-pulse (pactl info)" pactl_q info

# 3. The virtual devices.
pactl_q load-module module-null-sink sink_name=test_speaker rate=48000 channels=2 \
    channel_map=front-left,front-right sink_properties=device.description=jhack-test-speaker >/dev/null
pactl_q load-module module-null-sink sink_name=test_mic_feed rate=48000 channels=1 \
    channel_map=mono sink_properties=device.description=jhack-test-mic-feed >/dev/null
# test_mic is mono like its feed: a stereo remap would be an up-mix, and an app
# recording it in mono would then get PipeWire's summed down-mix (+3 dB).
pactl_q load-module module-remap-source source_name=test_mic master=test_mic_feed.monitor \
    channels=1 channel_map=mono source_properties=device.description=jhack-test-mic >/dev/null
wait_for "the test devices" bash -c "pactl list short sinks | grep -qw test_speaker &&
    pactl list short sinks | grep -qw test_mic_feed && pactl list short sources | grep -qw test_mic"
# WirePlumber applies the configured defaults asynchronously: set, then poll.
pactl_q set-default-sink test_speaker
pactl_q set-default-source test_mic
wait_for "test_speaker as the default sink" default_sink_is test_speaker
wait_for "test_mic as the default source" default_source_is test_mic

for d in "${DAEMONS[@]}"; do
    live_pid "$d" >/dev/null || { log "error: $d died; see $JHACK_AUDIO_DIR/logs/$d.log"; exit 1; }
done

log "started in $JHACK_AUDIO_DIR in $(elapsed_ms) ms"
print_env
