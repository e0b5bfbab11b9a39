#!/usr/bin/env bash
# Train and evaluate configs on ../shared/data/magnetic_tile (docs/ACCURACY.md); each run's
# snapshots (model-<m>min.onnx, from snapshots_min) are evaluated too.
set -u
cd "$(dirname "$0")"
DATA=../../../shared/data/magnetic_tile
for m in ${@:-default default_s1}; do
  start=$(date +%s)
  edge-train --config $m.yaml > runs-$m.train.log 2>&1 || echo "$m: training failed" >&2
  for model in runs/$m/model*.onnx; do
    name=$(basename $model .onnx)
    out=runs/$m/eval${name#model}
    edge-eval --model $model --data $DATA --out $out > runs-$m${name#model}.eval.log 2>&1 || echo "$m: evaluation of $model failed" >&2
  done
  echo "$m done in $(( $(date +%s) - start )) s: $(tail -1 runs-$m.eval.log)"
done
