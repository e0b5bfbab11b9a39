#!/usr/bin/env bash
# Train and evaluate configs on the staged object set (stage.py makes runs/data; docs/ACCURACY.md).
cd "$(dirname "$0")" || exit 1
[ -d runs/data ] || python3 stage.py runs/data
if [ $# -eq 0 ]; then set -- default default_s1; fi
exec ../run_configs.sh . runs/data "$@"
