#!/usr/bin/env bash
# Debian packages MockVox uses at run time; skipped when already present or when not root on Debian.
set -euo pipefail
needed=()
command -v espeak-ng >/dev/null || needed+=(espeak-ng)          # regenerating the sample voice
[ -d /var/lib/mecab/dic/open-jtalk/naist-jdic ] || needed+=(open-jtalk-mecab-naist-jdic)  # Japanese G2P
command -v git >/dev/null || needed+=(git)
command -v curl >/dev/null || needed+=(curl)       # the README's API walk-through (run by the tests)
if [ ${#needed[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: install these system packages for full functionality: ${needed[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
