#!/usr/bin/env bash
# source_layout: the structural rules of docs/ARCHITECTURE.md hold on the source tree: common/'s
# folders are layered, no include cycle, no file over 700 lines, no function over 120 lines
# (tests/check_source_layout.py names every violation).
# Usage: source_layout.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
SRC="${2:?usage: source_layout.sh BUILD_DIR SOURCE_DIR}"
exec /usr/bin/python3 "$SRC/tests/check_source_layout.py" "$SRC"
