#!/usr/bin/env bash
# The main job: set up the virtualenv if needed, then start the dashboard on
# http://localhost:8501 (extra arguments go to `streamlit run`, e.g. --server.port 8600).
#
# It listens on 127.0.0.1 only: nobody else on the network can open it. To share it, set
# BN_LAB_PASSWORD (or an OIDC login, README "Sharing the dashboard") and then
# BN_LAB_ADDRESS=0.0.0.0 (or pass --server.address yourself, which always wins).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
address=(--server.address "${BN_LAB_ADDRESS:-127.0.0.1}")
for arg in "$@"; do
  case $arg in
    --server.address | --server.address=*) address=() ;;  # the user's own choice
  esac
done
# ${a[@]+"${a[@]}"}: an empty array under set -u is an error in bash < 4.4 (macOS' 3.2).
exec .venv/bin/python -m streamlit run app.py ${address[@]+"${address[@]}"} "$@"
