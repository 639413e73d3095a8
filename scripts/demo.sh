#!/usr/bin/env bash
# Set up (idempotent), then run the quick demo: stage one and stage two end to end on Pendulum-v1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python recipes/td3_accelerate.py experiment=quick "$@"
