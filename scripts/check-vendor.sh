#!/usr/bin/env bash
# Checks that each vendored crate is exactly its crates.io release plus the small
# patches kept beside it (vendor/patches/<name>-<version>-*.patch): it downloads the
# release, applies the patch and compares the source files jhack builds. Needs
# network access to static.crates.io; not part of the test command.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
# One crate may carry several patches (vendor/patches/<name>-<version>-<what>.patch),
# applied in name order.
for crate in $(for p in "$root"/vendor/patches/*.patch; do
    base="$(basename "$p" .patch)"              # e.g. cpal-0.18.2-pulseaudio-timing
    name="${base%%-[0-9]*}"                     # cpal
    rest="${base#"$name"-}"                     # 0.18.2-pulseaudio-timing
    echo "$name-${rest%%-[a-z]*}"               # cpal-0.18.2
done | sort -u); do
    name="${crate%-*}"
    version="${crate##*-}"
    curl -sSfL -o "$work/$name.crate" "https://static.crates.io/crates/$name/$name-$version.crate"
    tar xzf "$work/$name.crate" -C "$work"
    applied=()
    for patch in "$root"/vendor/patches/"$crate"-*.patch; do
        (cd "$work/$name-$version" && patch -s -p1 <"$patch")
        applied+=("$(basename "$patch")")
    done
    if diff -r "$work/$name-$version/src" "$root/vendor/$name/src" >/dev/null; then
        echo "vendor/$name: crates.io $name $version + ${applied[*]}"
    else
        echo "vendor/$name: differs from crates.io $name $version + ${applied[*]}" >&2
        status=1
    fi
done
exit "$status"
