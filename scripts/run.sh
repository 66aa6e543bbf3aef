#!/usr/bin/env bash
# The main job: set up the virtualenv if needed, then run the original study
# (`python -m bn_core compare`) with any extra flags, e.g. --dataset fashion_mnist.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m bn_core compare "$@"
