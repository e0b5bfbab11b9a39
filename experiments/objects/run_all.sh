#!/usr/bin/env bash
# Train and evaluate configs on the staged object set (stage.py runs/data; docs/ACCURACY.md).
set -u
cd "$(dirname "$0")"
[ -d runs/data ] || python3 stage.py runs/data
for m in ${@:-default default_s1}; do
  start=$(date +%s)
  edge-train --config $m.yaml > runs-$m.train.log 2>&1 || echo "$m: training failed" >&2
  edge-eval --model runs/$m/model.onnx --data runs/data --out runs/$m/eval > runs-$m.eval.log 2>&1 || echo "$m: evaluation failed" >&2
  echo "$m done in $(( $(date +%s) - start )) s: $(tail -1 runs-$m.eval.log)"
done
