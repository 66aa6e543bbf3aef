#!/usr/bin/env bash
# The one command that sets up everything and runs the whole test suite:
#   - Debian's dataset-fashion-mnist (real data for the integration test), when missing;
#   - the virtualenv with runtime and test requirements;
#   - pytest over tests/ (extra arguments are passed to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -d /usr/share/datasets/fashion-mnist ]]; then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
bash scripts/setup.sh --dev
.venv/bin/ruff check bn_core tests bench scripts app.py pages
# pytest exits 5 when it collected no test: that is a failure too, as is any non-zero code.
.venv/bin/python -m pytest "$@"
