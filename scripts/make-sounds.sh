#!/usr/bin/env bash
# (Re)generates jhack's starter pack of sounds in sounds/, deterministically: the
# same tools give the same bytes. Everything is synthesised here with sox (drums,
# tones, noise) and espeak-ng (speech); ffmpeg encodes Ogg Vorbis and MP3 (with
# -bitexact, so no random Ogg serial numbers or version tags).
#
# Each sound: short (0.3-4 s), 5 ms fades at both ends (no clicks), peak normalised
# to -1 dBFS, 48 or 44.1 kHz, in a mix of formats (wav, flac, ogg, mp3) so the
# pack also exercises the decoders. File names: NN-name.ext; the first nine map to
# the keys 1-9. The sounds are CC0 (see sounds/LICENSE.txt).
#
# Needs: sox (with libsox-fmt-all for flac), espeak-ng, ffmpeg (libvorbis, libmp3lame).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/sounds"

for c in sox espeak-ng ffmpeg; do
    if ! command -v "$c" >/dev/null 2>&1; then
        echo "make-sounds.sh: '$c' not found; run scripts/install-deps.sh --test" >&2
        exit 1
    fi
done
encoders="$(ffmpeg -hide_banner -encoders 2>/dev/null || true)"
for enc in libvorbis libmp3lame; do
    if ! grep -qw "$enc" <<<"$encoders"; then
        echo "make-sounds.sh: ffmpeg has no $enc encoder" >&2
        exit 1
    fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# sox in repeatable mode (fixed seed for noise and dither), quiet.
SOX=(sox -R -V1)

# Arithmetic (awk: no bc needed).
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# Tones mixed to mono, 48 kHz float: tone OUT LEN DECAY TYPE FREQ [TYPE FREQ]...
# With DECAY > 0 (and >= LEN) the sound decays exponentially: sox's "l" fade is
# linear in dB, reaching -100 dB DECAY seconds in; it is then cut at LEN.
tone() {
    local o="$1" len="$2" decay="$3"
    shift 3
    local n=$(($# / 2))
    if [ "$decay" = 0 ]; then
        "${SOX[@]}" -r 48000 -c "$n" -n -b 32 -e float "$tmp/$o" synth "$len" "$@" remix -
    else
        "${SOX[@]}" -r 48000 -c "$n" -n -b 32 -e float "$tmp/$o" synth "$decay" "$@" remix - \
            fade l 0 "$decay" "$decay" trim 0 "$len"
    fi
}

# A decaying noise burst: noise OUT LEN DECAY KIND [EFFECT...] (DECAY >= LEN).
noise() {
    local o="$1" len="$2" decay="$3" kind="$4"
    shift 4
    "${SOX[@]}" -r 48000 -c 1 -n -b 32 -e float "$tmp/$o" synth "$decay" "$kind" "$@" \
        fade l 0 "$decay" "$decay" trim 0 "$len"
}

# A metallic cymbal, TR-808 style: six detuned square waves, high-passed, with a
# little noise on top, decaying: cymbal OUT LEN DECAY
cymbal() {
    local o="$1" len="$2" decay="$3"
    "${SOX[@]}" -r 48000 -c 6 -n -b 32 -e float "$tmp/$o-sq.wav" synth "$decay" \
        square 205.3 square 304.4 square 369.6 square 522.7 square 540 square 800 \
        remix - highpass 7000 highpass 7000 equalizer 10000 1q 3 fade l 0 "$decay" "$decay" trim 0 "$len"
    noise "$o-n.wav" "$len" "$decay" whitenoise highpass 8000
    "${SOX[@]}" -m -v 1 "$tmp/$o-sq.wav" -v 0.25 "$tmp/$o-n.wav" "$tmp/$o"
}

# Final touch and encoding: finish IN OUT [RATE] [extra sox effects...]
# 5 ms half-sine fades, peak at -1 dBFS, then the format given by OUT's extension.
finish() {
    local in="$1" o="$2" rate="$3"
    shift 3
    local fx=("$@" fade h 0.005 -0 0.005 norm -1 rate -v "$rate" norm -1)
    case "$o" in
        *.wav) "${SOX[@]}" "$tmp/$in" -b 16 "$out/$o" "${fx[@]}" ;;
        *.flac) "${SOX[@]}" "$tmp/$in" -b 16 "$out/$o" "${fx[@]}" ;;
        *.ogg) lossy "$in" "$o" -c:a libvorbis -q:a 4 ;;
        *.mp3) lossy "$in" "$o" -c:a libmp3lame -q:a 3 ;;
        *) echo "make-sounds.sh: unknown format: $o" >&2; exit 1 ;;
    esac
}

# Lossy encoding with ffmpeg: lossy IN OUT CODEC-ARGS... (effects in $fx). Coding
# moves the peak, so encode, measure the decoded peak, correct the gain, encode again.
lossy() {
    local in="$1" o="$2"
    shift 2
    local src="$tmp/final-$o.wav" enc=(-fflags +bitexact -flags:a +bitexact -map_metadata -1 "$@")
    "${SOX[@]}" "$tmp/$in" -b 32 -e float "$src" "${fx[@]}"
    ffmpeg -nostdin -v error -y -i "$src" "${enc[@]}" "$out/$o"
    local peak
    peak="$(ffmpeg -nostdin -v info -i "$out/$o" -af volumedetect -f null - 2>&1 |
        sed -n 's/.*max_volume: \(-\?[0-9.]*\) dB.*/\1/p')"
    ffmpeg -nostdin -v error -y -i "$src" -af "volume=$(calc "-1 - ($peak)")dB" "${enc[@]}" "$out/$o"
}

mkdir -p "$out"
rm -f "$out"/[0-9][0-9]-*.*

# 01 airhorn: "baap baap baaaap", a detuned brassy sawtooth chord with some grit.
blast() { # blast OUT LEN
    "${SOX[@]}" -r 48000 -c 5 -n -b 32 -e float "$tmp/$1" \
        synth "$2" sawtooth 349 sawtooth 351.5 sawtooth 440 sawtooth 523 sawtooth 698 \
        remix - overdrive 8 lowpass 3500 highpass 150 fade q 0.02 "$2" 0.06 gain -n -3
}
blast b1.wav 0.22
blast b2.wav 0.95
"${SOX[@]}" "$tmp/b1.wav" "$tmp/b1p.wav" pad 0 0.07
"${SOX[@]}" "$tmp/b1p.wav" "$tmp/b1p.wav" "$tmp/b2.wav" "$tmp/airhorn.wav"
finish airhorn.wav 01-airhorn.wav 48000

# 02 rimshot, "ba-dum-tss": two toms (pitch-dropping sines with a click) and a cymbal.
drum() { # drum OUT F0 F1 LEN
    tone "$1-body.wav" "$4" "$4" sine "$2-$3"
    noise "$1-click.wav" 0.03 0.03 whitenoise highpass 2000
    "${SOX[@]}" -m -v 1 "$tmp/$1-body.wav" -v 0.35 "$tmp/$1-click.wav" "$tmp/$1"
}
drum tom1.wav 240 150 0.25
drum tom2.wav 170 95 0.35
cymbal cym.wav 1.2 1.5
"${SOX[@]}" "$tmp/tom2.wav" "$tmp/tom2p.wav" pad 0.17
"${SOX[@]}" "$tmp/cym.wav" "$tmp/cymp.wav" pad 0.52 gain -n -6
"${SOX[@]}" -m -v 0.8 "$tmp/tom1.wav" -v 0.9 "$tmp/tom2p.wav" -v 0.7 "$tmp/cymp.wav" "$tmp/rimshot.wav"
finish rimshot.wav 02-rimshot.flac 48000

# 03 ding: a small bell, inharmonic partials decaying at different speeds.
tone p1.wav 2.2 3.0 sine 1046.5
tone p2.wav 2.2 1.6 sine 2888
tone p3.wav 2.2 0.9 sine 5650
tone p4.wav 2.2 2.4 sine 2093 # octave, for warmth
"${SOX[@]}" -m -v 1 "$tmp/p1.wav" -v 0.45 "$tmp/p2.wav" -v 0.2 "$tmp/p3.wav" -v 0.3 "$tmp/p4.wav" "$tmp/ding.wav"
finish ding.wav 03-ding.ogg 48000

# 04 buzzer (wrong answer): two dissonant low square waves.
"${SOX[@]}" -r 48000 -c 2 -n -b 32 -e float "$tmp/buzzer.wav" synth 0.85 square 110 square 116.5 \
    remix - lowpass 2500 fade t 0.01 0.85 0.08
finish buzzer.wav 04-buzzer.wav 48000

# 05 success: a rising major arpeggio (C5 E5 G5 C6), plucked, ending on a chord.
notes=(523.25 659.25 783.99 1046.5)
i=0
for f in "${notes[@]}"; do
    tone "n$i.wav" 0.9 1.4 triangle "$f" sine "$(calc "$f * 2")"
    "${SOX[@]}" "$tmp/n$i.wav" "$tmp/n${i}p.wav" pad "$(calc "$i * 0.11")"
    i=$((i + 1))
done
"${SOX[@]}" -m "$tmp/n0p.wav" "$tmp/n1p.wav" "$tmp/n2p.wav" "$tmp/n3p.wav" "$tmp/success.wav"
finish success.wav 05-success.mp3 44100

# 06 drumroll: snare hits speeding up and swelling, then a crash.
snare() { # snare OUT
    noise "$1-n.wav" 0.12 0.12 whitenoise bandpass 3000 2q
    tone "$1-t.wav" 0.12 0.08 sine 190
    "${SOX[@]}" -m -v 1 "$tmp/$1-n.wav" -v 0.5 "$tmp/$1-t.wav" "$tmp/$1"
}
snare hit.wav
# Hit times: intervals shrink from 90 ms to 45 ms over ~1.8 s; gain grows.
t=0
parts=()
k=0
while [ "$(awk "BEGIN { print ($t < 1.8) }")" = 1 ]; do
    g="$(calc "-14 + 12 * $t / 1.8")"
    "${SOX[@]}" "$tmp/hit.wav" "$tmp/h$k.wav" pad "$t" gain "$g"
    parts+=("$tmp/h$k.wav")
    t="$(calc "$t + 0.09 - 0.045 * $t / 1.8")"
    k=$((k + 1))
done
cymbal crash.wav 1.3 1.8
"${SOX[@]}" "$tmp/crash.wav" "$tmp/crashp.wav" pad 1.85 gain -n -12
"${SOX[@]}" -m "${parts[@]}" "$tmp/crashp.wav" "$tmp/drumroll.wav"
finish drumroll.wav 06-drumroll.flac 44100

# 07 whoosh: band-passed pink noise swept up and back down (sox's bend), swelling
# and fading, passing from left to right.
"${SOX[@]}" -r 48000 -c 1 -n -b 32 -e float "$tmp/wn.wav" synth 1.1 pinknoise \
    bandpass 600 1.2q bend 0.05,1900,0.55 0.55,-1200,0.5 sinc 150-6000 fade q 0.6 1.1 0.45
"${SOX[@]}" "$tmp/wn.wav" "$tmp/wl.wav" trim 0 1.0 pad 0 0.1
"${SOX[@]}" "$tmp/wn.wav" "$tmp/wr.wav" pad 0.06 trim 0 1.1
"${SOX[@]}" -M "$tmp/wl.wav" "$tmp/wr.wav" "$tmp/whoosh.wav"
finish whoosh.wav 07-whoosh.ogg 48000

# 08 clap: a few very close noise bursts, then a short room tail.
noise c1.wav 0.012 0.012 whitenoise bandpass 1200 1q
noise tail.wav 0.25 0.25 whitenoise bandpass 1100 0.8q
"${SOX[@]}" "$tmp/c1.wav" "$tmp/c2.wav" pad 0.011
"${SOX[@]}" "$tmp/c1.wav" "$tmp/c3.wav" pad 0.021
"${SOX[@]}" "$tmp/tail.wav" "$tmp/tailp.wav" pad 0.03
"${SOX[@]}" -m -v 0.8 "$tmp/c1.wav" -v 0.9 "$tmp/c2.wav" -v 1 "$tmp/c3.wav" -v 0.9 "$tmp/tailp.wav" "$tmp/clap.wav" \
    pad 0 0.1
finish clap.wav 08-clap.wav 48000

# 09 countdown: three short beeps and a long high one.
tone beep.wav 0.12 0 sine 880
tone go.wav 0.6 0 sine 1760
for b in beep go; do
    "${SOX[@]}" "$tmp/$b.wav" "$tmp/${b}f.wav" fade h 0.005 -0 0.02
done
"${SOX[@]}" "$tmp/beepf.wav" "$tmp/beepp.wav" pad 0 0.38
"${SOX[@]}" "$tmp/beepp.wav" "$tmp/beepp.wav" "$tmp/beepp.wav" "$tmp/gof.wav" "$tmp/countdown.wav"
finish countdown.wav 09-countdown.flac 48000

# 10-12: spoken, with espeak-ng (a touch of room added).
say() { # say OUT TEXT VOICE SPEED PITCH
    espeak-ng -v "$3" -s "$4" -p "$5" -w "$tmp/$1.raw.wav" "$2"
    "${SOX[@]}" "$tmp/$1.raw.wav" -r 48000 -b 32 -e float "$tmp/$1" rate -v 48000 silence 1 0.01 0.5% \
        reverse silence 1 0.01 0.5% reverse highpass 80 reverb 15 40 30 pad 0.02 0.1 channels 1
}
say nice.wav "Nice!" en-us+m3 150 45
finish nice.wav 10-nice.mp3 44100
say hello.wav "Hello there." en-gb+m1 145 40
finish hello.wav 11-hello-there.ogg 48000
say ready.wav "Ready?" en-us+f3 150 60
finish ready.wav 12-ready.wav 44100

cat >"$out/LICENSE.txt" <<'LICENSE'
jhack starter sounds
====================

The sound files in this folder were made by the jhack project itself: synthesised
with sox and spoken by espeak-ng, encoded with sox and ffmpeg, by
scripts/make-sounds.sh (run it to make them again). No recordings or samples from
anyone else are in them.

To the extent possible under law, the jhack contributors have waived all copyright
and related or neighboring rights to these sound files, dedicating them to the
public domain under the Creative Commons CC0 1.0 Universal dedication:
https://creativecommons.org/publicdomain/zero/1.0/

You can copy, modify, distribute and use them, even commercially, without asking
permission.
LICENSE

ls -l "$out" >&2
