#!/usr/bin/env bash
# Train and evaluate the four seed methods on ../shared/data/magnetic_tile (docs/ACCURACY.md).
set -u
cd "$(dirname "$0")"
for m in ${@:-cae001 renet_d skip_ae unet}; do
  start=$(date +%s)
  edge-train --config $m.yaml > runs-$m.train.log 2>&1 || echo "$m: training failed" >&2
  edge-eval --model runs/$m/model.onnx --data ../../../../shared/data/magnetic_tile --out runs/$m/eval \
    > runs-$m.eval.log 2>&1 || echo "$m: evaluation failed" >&2
  echo "$m done in $(( $(date +%s) - start )) s: $(tail -1 runs-$m.eval.log)"
done
