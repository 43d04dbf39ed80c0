#!/usr/bin/env bash
# The test command of jhack:  scripts/test.sh   (from any directory)
#
# 1. installs what is missing (scripts/install-deps.sh --test) and makes sure a Rust
#    toolchain with rustfmt and clippy is there;
# 2. lints, failing fast: cargo fmt --check, cargo clippy --all-targets -D warnings;
# 3. starts a private virtual audio stack for this run (scripts/audio-stack/), always
#    stopped again on exit, even on failure or Ctrl-C;
# 4. cargo test: unit tests (lib, bins) in parallel, doc tests, then the integration
#    tests one at a time (the audio ones share one virtual speaker and check timing);
#    all three run even when one fails, so one run shows every failure.
# Benchmarks are compiled by clippy but never run. Exits non-zero on any failure,
# after a summary of the steps.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

steps=()
failed=""
stack_dir=""
t_start=$SECONDS

summary() {
    local s
    echo >&2
    echo "==== scripts/test.sh summary ($((SECONDS - t_start)) s) ====" >&2
    for s in "${steps[@]}"; do echo "  $s" >&2; done
    if [ -n "$failed" ]; then
        echo "  FAILED: $failed" >&2
    else
        echo "  all passed" >&2
    fi
}

cleanup() {
    local rc=$?
    if [ -n "$stack_dir" ]; then
        JHACK_AUDIO_DIR="$stack_dir" scripts/audio-stack/stop.sh || true
    fi
    if [ "$rc" -ne 0 ] && [ -z "$failed" ]; then
        failed="interrupted or setup error (exit $rc)"
    fi
    summary
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a named step; on failure records it and exits (the EXIT trap summarises).
# With CONTINUE=1 a failure is recorded and the run goes on.
step() {
    local name="$1"
    shift
    local t0=$SECONDS
    echo "==== $name: $*" >&2
    if "$@"; then
        steps+=("ok    $name ($((SECONDS - t0)) s)")
    else
        local rc=$?
        steps+=("FAIL  $name ($((SECONDS - t0)) s, exit $rc)")
        failed="${failed:+$failed, }$name"
        if [ "${CONTINUE:-0}" != 1 ]; then
            exit "$rc"
        fi
    fi
}

# --- 1. dependencies and toolchain
load_cargo_env() {
    # rustup's cargo, when it is installed under ~/.cargo.
    if [ -f "$HOME/.cargo/env" ]; then
        # shellcheck source=/dev/null
        . "$HOME/.cargo/env"
    fi
}
load_cargo_env
step "install-deps" scripts/install-deps.sh --test
load_cargo_env # rustup may just have been installed
if ! command -v cargo >/dev/null 2>&1; then
    failed="no cargo on PATH (install Rust with rustup)"
    exit 1
fi
if command -v rustup >/dev/null 2>&1; then
    installed="$(rustup component list --installed 2>/dev/null || true)"
    for c in rustfmt clippy; do
        if ! grep -q "^$c" <<<"$installed"; then
            step "rustup component add $c" rustup component add "$c"
        fi
    done
fi

# --- 2. lints (fail fast)
step "fmt" cargo fmt --all -- --check
step "clippy" cargo clippy --all-targets --features test-hooks -- -D warnings

# --- 3. the virtual audio stack: a private one per run, so that runs in parallel
# (or a stack a developer started by hand) never interfere.
uid="$(id -u)"
for d in /tmp/jhack-audio-"$uid"-test-*; do
    # Leftovers of runs that were killed outright (their shell pid is gone).
    [ -e "$d/.jhack-audio-stack" ] || continue
    pid="${d##*-}"
    if [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
        JHACK_AUDIO_DIR="$d" scripts/audio-stack/stop.sh || true
    fi
done
stack_dir="/tmp/jhack-audio-$uid-test-$$"
start_stack() {
    local env_lines
    env_lines="$(JHACK_AUDIO_DIR="$stack_dir" scripts/audio-stack/start.sh)" || return 1
    eval "$env_lines"
}
step "audio stack" start_stack

# --- 4. tests
# A test that cannot run says so and appends a line to this file: a skip is counted,
# never passed off as a pass, and since this script installs everything the tests
# need, any skip here is a failure.
skip_log="$(mktemp -t jhack-skips.XXXXXX)"
export JHACK_SKIP_LOG="$skip_log"
CONTINUE=1 step "unit tests" cargo test --features test-hooks --lib --bins
CONTINUE=1 step "doc tests" cargo test --features test-hooks --doc
CONTINUE=1 step "integration tests" cargo test --features test-hooks --no-fail-fast --test '*' -- --test-threads=1
no_skips() {
    local n
    n="$(wc -l <"$skip_log" | tr -d ' ')"
    if [ "$n" -gt 0 ]; then
        echo "$n skipped (everything they need was to be installed by this script):" >&2
        sed 's/^/  /' "$skip_log" >&2
        return 1
    fi
    echo "0 tests skipped" >&2
}
CONTINUE=1 step "nothing skipped" no_skips
rm -f "$skip_log"
if [ -n "$failed" ]; then
    exit 1
fi
