#!/usr/bin/env bash
# `make test` runs the Docker test too (tests/docker/run.sh): its own dockerd builds deploy/Dockerfile
# and runs the compose stack (plain, CURVE, faults): 6-15 min cold (debootstrap, apt in the image
# build), 4-11 min with the cache in /var/cache/edistill/docker, depending on the machine's load.
# Exit 77 (ctest: skipped) without root, when the engine cannot start here, with
# EDISTILL_SKIP_DOCKER=1, and in the sanitizer build (the image compiles its own Release build
# from the sources: once per `make test` is enough).
set -euo pipefail
if [[ "${EDISTILL_SKIP_DOCKER:-0}" == 1 ]]; then echo "SKIP: EDISTILL_SKIP_DOCKER=1"; exit 77; fi
if [[ $(id -u) != 0 ]]; then echo "SKIP: the Docker test needs root (dockerd, packages)"; exit 77; fi
san=$(sed -n 's/^EDISTILL_SANITIZE:[A-Z]*=//p' "$1/CMakeCache.txt" 2>/dev/null || true)
if [[ -n "$san" && ! "${san,,}" =~ ^(off|0|no|false|n)$ ]]; then
  echo "SKIP: the Docker test runs in the normal build only (the image builds its own binaries)"; exit 77
fi
export EDISTILL_DOCKER_SKIP_OK=1
exec bash "$2/tests/docker/run.sh"
