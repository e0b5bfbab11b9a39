#!/usr/bin/env bash
# Train and evaluate configs of one experiment folder (docs/ACCURACY.md): edge-train --config
# <name>.yaml, then edge-eval of every model the run wrote (snapshots model-<m>min.onnx too).
#   run_configs.sh <experiment folder> <data folder, relative to it> <config name>...
set -u
cd "$1"
DATA=$2
shift 2
for m in "$@"; do
  start=$(date +%s)
  edge-train --config $m.yaml > runs-$m.train.log 2>&1 || echo "$m: training failed" >&2
  for model in runs/$m/model*.onnx; do
    name=$(basename $model .onnx)
    edge-eval --model $model --data $DATA --out runs/$m/eval${name#model} > runs-$m${name#model}.eval.log 2>&1 \
      || echo "$m: evaluation of $model failed" >&2
  done
  echo "$m done in $(( $(date +%s) - start )) s: $(tail -n 1 runs-$m.eval.log)"
done
