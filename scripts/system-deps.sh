#!/usr/bin/env bash
# Debian packages clipforge's tests and demo use:
#   chromium                  the page tests drive it through Playwright (no browser download)
#   fonts-noto-color-emoji    emoji images          (clipforge data emoji)
#   unicode-cldr-core         emoji names/keywords  (clipforge data emoji)
#   unicode-data              emoji groups          (clipforge data emoji)
#   openclipart-png/-svg      clip art + metadata   (clipforge data clipart)
# Installs only what is missing, so a second run costs nothing.
set -euo pipefail
packages=(chromium fonts-noto-color-emoji unicode-cldr-core unicode-data openclipart-png openclipart-svg)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
