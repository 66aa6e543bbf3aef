#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv from the pinned requirements, and install
# bn_core into it (editable: `bn-lab` on the venv's PATH, `import bn_core` from anywhere).
# Usage: scripts/setup.sh [--dev]   (--dev adds the test tools and the Ray extra its tests use)
# Idempotent: it reinstalls only when a requirements file changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
files=(requirements.txt pyproject.toml)
[[ "${1:-}" == "--dev" ]] && files+=(requirements-dev.txt requirements-ray.txt)
stamp=".venv/.installed-$(cat "${files[@]}" | sha256sum | cut -c1-16)"
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
if [[ ! -f "$stamp" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  args=(-r requirements.txt)
  [[ "${1:-}" == "--dev" ]] && args+=(-r requirements-dev.txt -r requirements-ray.txt)
  .venv/bin/python -m pip install -q --no-cache-dir "${args[@]}"
  .venv/bin/python -m pip install -q --no-cache-dir --no-deps -e .
  touch "$stamp"
fi
