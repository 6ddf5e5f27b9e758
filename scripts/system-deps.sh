#!/usr/bin/env bash
# Make sure the Debian/Ubuntu packages rtvc needs are installed: installs what is missing when it can
# (root, or sudo without a password), otherwise prints the one command to run and fails.
#   scripts/system-deps.sh venv   what making .venv needs (python3-venv)
#   scripts/system-deps.sh run    what `rtvc run` needs (PortAudio; a C compiler for rtvc's audio core, rtvc/_rt.c)
#   scripts/system-deps.sh test   what the tests need too (JACK, espeak-ng, sox, OBS Studio under Xvfb, Chromium)
#   scripts/system-deps.sh pipewire   PipeWire, WirePlumber and its ALSA and JACK libraries, for the PipeWire tests and
#                                 bench; CI installs them (.ci/run). Not part of `test`: pipewire-alsa makes PipeWire
#                                 the ALSA default, which a desktop with another sound server must not get unasked
set -euo pipefail
# Debian's browser package is chromium; Ubuntu's is chromium-browser
browser=chromium
if command -v apt-cache >/dev/null && ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]' \
   && apt-cache policy chromium-browser 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  browser=chromium-browser
fi
case "${1:-run}" in
  venv) pkgs=(python3-venv) ;;
  run)  pkgs=(libportaudio2 python3-venv gcc libc6-dev) ;;
  test) pkgs=(libportaudio2 python3-venv gcc libc6-dev jackd2 espeak-ng sox obs-studio xvfb libgl1-mesa-dri "$browser" tmux) ;;
  pipewire) pkgs=(pipewire pipewire-bin wireplumber pipewire-alsa pipewire-jack dbus) ;;
  *) echo "usage: $0 venv|run|test|pipewire" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "rtvc needs these system packages: ${missing[*]} (PortAudio, JACK, espeak-ng, sox, OBS Studio, Xvfb, Chromium); install them with your package manager" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo); else
  echo "rtvc needs these system packages: ${missing[*]}" >&2
  echo "run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
# jackd2 asks whether to enable realtime limits; answer for it (no prompt without a terminal)
echo "jackd2 jackd/tweak_rt_limits boolean false" | "${sudo[@]}" debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
