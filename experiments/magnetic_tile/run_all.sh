#!/usr/bin/env bash
# Train and evaluate configs on ../shared/data/magnetic_tile (docs/ACCURACY.md).
cd "$(dirname "$0")" || exit 1
if [ $# -eq 0 ]; then set -- default default_s1; fi
exec ../run_configs.sh . ../../../shared/data/magnetic_tile "$@"
