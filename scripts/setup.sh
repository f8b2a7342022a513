#!/usr/bin/env bash
# Set up joulesim in ./.venv: the CPU build of PyTorch (installed first, so
# that the project's torch range is already satisfied and no CUDA build is
# downloaded), then the project with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "joulesim setup: creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "joulesim setup: installing the CPU build of torch 2.13.0"
    pip install torch==2.13.0
fi
# Debian packages, as root: the Fashion-MNIST data, and Chromium for the test that opens the
# demo's HTML report headless (that test is skipped where Chromium is missing).
apt_missing=()
[ -d /usr/share/datasets/fashion-mnist ] || apt_missing+=(dataset-fashion-mnist)
command -v chromium >/dev/null || apt_missing+=(chromium)
if [ ${#apt_missing[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "joulesim setup: installing Debian packages ${apt_missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"; } >/dev/null 2>&1 \
        || echo "joulesim setup: could not install ${apt_missing[*]} (--data fashion-mnist will say so if it is missing)"
fi
echo "joulesim setup: installing joulesim and its dependencies"
pip install -e ".[dev]"
.venv/bin/python -c "import simulator, torch, numba; print('joulesim setup: ok (torch', torch.__version__, ', numba', numba.__version__ + ')')"
