#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian/Ubuntu machine, then run the whole suite.
# Debian packages: chromium + chromium-driver (real-browser UI tests), redis-server (multi-host queue tests),
# postgresql (the store's PostgreSQL backend: tests start their own cluster with initdb + pg_ctl on loopback),
# ffmpeg (command-line checks of exported videos). Python packages: requirements-dev.txt in .venv.
# Extra arguments go to pytest, e.g. `bash tests/run_all.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  chromium chromium-driver redis-server postgresql ffmpeg nodejs fonts-dejavu-core ca-certificates

test -d .venv || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt

# Outside readers for tests/test_interop_*.py, each in its own venv: DIVE-DSA's server package pins pydantic 1 and
# numpy 1.24, datumaro brings its own stack. Complete pinned lists, installed --no-deps; `.complete` marks a finished
# install (the tests fail, saying why, when it is missing).
for side in dive datumaro; do
  if [ ! -f ".cache/venv-$side/.complete" ]; then
    rm -rf ".cache/venv-$side"
    python3 -m venv ".cache/venv-$side"
    ".cache/venv-$side/bin/python" -m pip install -q --no-deps -r "requirements-interop-$side.txt"
    touch ".cache/venv-$side/.complete"
  fi
done

exec .venv/bin/python -m pytest "$@"
