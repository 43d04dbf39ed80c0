#!/usr/bin/env bash
# Installs what jhack needs to build (and, with --test, to run its tests), on Debian
# or Ubuntu, with apt-get. Only what is missing is installed: on a machine that has
# everything this does no network access and prints nothing.
#
#   scripts/install-deps.sh          build deps: C toolchain, cmake (bundled libopus),
#                                    pkg-config + libasound2-dev (cpal/ALSA),
#                                    libpipewire-0.3-dev + libclang-dev (cpal/PipeWire,
#                                    whose bindings are generated at build time)
#   scripts/install-deps.sh --test   also the test deps: a PipeWire stack (the virtual
#                                    audio devices), pactl/parec/paplay, ffmpeg, sox,
#                                    espeak-ng, tmux, alsa-utils, dbus
#
# A Rust toolchain is installed with rustup (into ~/.cargo) only when no cargo is
# found at all; Debian's packaged Rust is too old for this crate (edition 2024).
set -euo pipefail

want_test=0
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install-deps.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

build_pkgs=(build-essential cmake pkg-config libasound2-dev libpipewire-0.3-dev libspa-0.2-dev libclang-dev)
test_pkgs=(
    pipewire pipewire-bin pipewire-pulse pipewire-alsa wireplumber
    dbus pulseaudio-utils alsa-utils
    ffmpeg sox libsox-fmt-all espeak-ng tmux rsync syncthing openssh-server openssh-client
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-pulseaudio
)
pkgs=("${build_pkgs[@]}")
if [ "$want_test" = 1 ]; then
    pkgs+=("${test_pkgs[@]}")
fi

have_cmd() { command -v "$1" >/dev/null 2>&1; }

if ! have_cmd dpkg-query || ! have_cmd apt-get; then
    echo "install-deps.sh: this is not a Debian/Ubuntu system (no dpkg/apt-get);" >&2
    echo "install by hand: ${pkgs[*]}" >&2
    exit 1
fi

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]
}

missing=()
for p in "${pkgs[@]}"; do
    installed "$p" || missing+=("$p")
done
# Debian 12 split dbus-daemon out of dbus; Ubuntu 22.04 has it inside dbus.
if [ "$want_test" = 1 ] && ! have_cmd dbus-daemon && ! installed dbus-daemon; then
    missing+=(dbus-daemon)
fi

# Rust: only when there is no cargo anywhere.
need_rust=0
if ! have_cmd cargo && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    need_rust=1
    have_cmd curl || missing+=(curl)
    installed ca-certificates || missing+=(ca-certificates)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        if have_cmd sudo; then
            SUDO=(sudo)
        else
            echo "install-deps.sh: missing ${missing[*]}, and not root and no sudo" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "install-deps.sh: installing ${missing[*]}" >&2
    "${SUDO[@]}" apt-get update -qq >&2
    # Keep only what this release knows (package names differ a little between
    # Debian and Ubuntu releases); say what is skipped.
    available=()
    for p in "${missing[@]}"; do
        if apt-cache show "$p" >/dev/null 2>&1; then
            available+=("$p")
        else
            echo "install-deps.sh: warning: no package $p on this system, skipped" >&2
        fi
    done
    if [ "${#available[@]}" -gt 0 ]; then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${available[@]}" >&2
    fi
fi

if [ "$need_rust" = 1 ]; then
    echo "install-deps.sh: no cargo found; installing Rust with rustup into ~/.cargo" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --quiet --profile minimal --component clippy,rustfmt >&2
fi
