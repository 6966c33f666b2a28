#!/usr/bin/env bash
# Build the Label Studio environment for the annotation-loop tests and docs
# (tests/test_labelstudio_server.py, docs/labelstudio.md): label-studio 1.23.2 and
# label-studio-sdk in their OWN venv, outside the repository. Label Studio is never a
# dependency of skseg: skseg's backend speaks to it over HTTP only.
#
# usage: bash benchmarks/setup_labelstudio.sh [LS_DIR]
#        (default: $SKSEG_LABELSTUDIO_DIR, else ~/.cache/skseg/labelstudio)
#
# Idempotent and fast when done: a READY stamp naming the pinned versions skips the
# install (about 1 GB and a few minutes on a fresh machine). Prints the path of the
# label-studio executable on its last line.
#
# Environment: PYTHON (default python3.11, else python3).
set -euo pipefail

P=${1:-${SKSEG_LABELSTUDIO_DIR:-$HOME/.cache/skseg/labelstudio}}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
LS_SPEC="label-studio==1.23.2"
SDK_SPEC="label-studio-sdk==2.1.2"
STAMP="$P/READY"
WANT="$LS_SPEC $SDK_SPEC"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$P/venv/bin/label-studio" ]; then
    echo "$P/venv/bin/label-studio"
    exit 0
fi
mkdir -p "$P"
rm -f "$STAMP"
if [ ! -x "$P/venv/bin/python" ]; then
    "$PYTHON" -m venv "$P/venv"
fi
"$P/venv/bin/python" -m pip install --quiet --upgrade pip
"$P/venv/bin/python" -m pip install --quiet "$LS_SPEC" "$SDK_SPEC"
"$P/venv/bin/python" -c 'import label_studio, label_studio_sdk; print("label-studio ready:", label_studio.__version__)' >&2
echo "$WANT" > "$STAMP"
echo "$P/venv/bin/label-studio"
