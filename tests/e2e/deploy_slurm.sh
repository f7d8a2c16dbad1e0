#!/usr/bin/env bash
# `make test` runs the Slurm test too (tests/slurm/run.sh, ~10 s once slurm-wlm and munge are
# installed): a real one-node cluster on this machine runs deploy/slurm/edistill.sbatch. Without
# root it cannot start the daemons: exit 77 (ctest: skipped).
set -euo pipefail
if [[ $(id -u) != 0 ]]; then echo "SKIP: the Slurm test needs root (daemons, packages)"; exit 77; fi
export OPENBLAS_NUM_THREADS=1
exec bash "$2/tests/slurm/run.sh" "$1"
