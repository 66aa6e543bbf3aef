#!/usr/bin/env bash
# The one command that sets up everything and runs the whole test suite:
#   - Debian packages the tests use, when missing: dataset-fashion-mnist (real data for the
#     integration tests) and chromium (the browser test drives it through Playwright);
#   - the virtualenv with runtime and test requirements;
#   - ruff (lint and format check), then pytest over tests/ (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[[ -d /usr/share/datasets/fashion-mnist ]] || need+=(dataset-fashion-mnist)
[[ -x /usr/bin/chromium ]] || need+=(chromium)
if ((${#need[@]})); then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash scripts/setup.sh --dev
.venv/bin/ruff check bn_core tests bench scripts app.py pages
.venv/bin/ruff format --check bn_core tests bench scripts app.py pages
# pytest exits 5 when it collected no test: that is a failure too, as is any non-zero code.
# --durations=25 puts the 25 slowest tests in the output (CI's log too); the JUnit XML
# (.pytest-results.xml, git-ignored) is what `bench/suite_times.py` summarises per file.
# With CI=true a skipped or xfailed test not listed in tests/allowed_skips.py fails the run.
.venv/bin/python -m pytest --durations=25 --junitxml=.pytest-results.xml "$@"
