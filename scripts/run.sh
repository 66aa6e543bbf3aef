#!/usr/bin/env bash
# The main job: set up the virtualenv if needed, then start the dashboard on
# http://localhost:8501 (extra arguments go to `streamlit run`, e.g. --server.port 8600).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m streamlit run app.py "$@"
