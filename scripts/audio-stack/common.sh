# shellcheck shell=bash disable=SC2034  # variables used by the scripts that source this
# Shared by start.sh and stop.sh (sourced, not run). Defines where the private
# stack lives and how its processes are recorded.

# The stack's directory: it is the private XDG_RUNTIME_DIR of the daemons and holds
# their logs, pid files and private config/state dirs.
JHACK_AUDIO_DIR="${JHACK_AUDIO_DIR:-/tmp/jhack-audio-$(id -u)}"
# Marker proving a directory was made by start.sh (stop.sh only ever deletes such).
MARKER=".jhack-audio-stack"
# Daemons in start order; stop.sh stops them in reverse.
DAEMONS=(dbus-daemon pipewire wireplumber pipewire-pulse)

# Variables that could point a client at another server; unset for the stack and
# in start.sh's output.
UNSET_VARS="PIPEWIRE_RUNTIME_DIR PIPEWIRE_REMOTE PULSE_RUNTIME_PATH PULSE_SINK PULSE_SOURCE"

log() { echo "audio-stack: $*" >&2; }

# The environment every process of (or talking to) the stack runs with.
stack_env() {
    export XDG_RUNTIME_DIR="$JHACK_AUDIO_DIR"
    export DBUS_SESSION_BUS_ADDRESS="unix:path=$JHACK_AUDIO_DIR/bus"
    export PULSE_SERVER="unix:$JHACK_AUDIO_DIR/pulse/native"
    # Pulse clients (pactl, parec) keep their cookie here, not in ~/.config/pulse.
    export PULSE_COOKIE="$JHACK_AUDIO_DIR/pulse-cookie"
    # PipeWire then finds its socket through XDG_RUNTIME_DIR alone (so a test that
    # swaps XDG_RUNTIME_DIR for an empty dir really has no server).
    # shellcheck disable=SC2086
    unset $UNSET_VARS
}

# Prints the pid recorded for daemon $1 if that process is alive and still is that
# daemon (a recycled pid is not ours); prints nothing and fails otherwise.
live_pid() {
    local f="$JHACK_AUDIO_DIR/pids/$1.pid" pid exe
    [ -r "$f" ] || return 1
    pid="$(cat "$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -d "/proc/$pid" ] || return 1
    # State Z (zombie) counts as dead.
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ] || return 1
    exe="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | awk '{print $1}')"
    [ "$(basename -- "$exe")" = "$1" ] || return 1
    echo "$pid"
}
