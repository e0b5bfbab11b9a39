#!/usr/bin/env bash
# FP32 / FP16 / INT8 (entropy and max calibration) engines of the trained magnetic_tile models (docs/ACCURACY.md, "Engines").
# For each: build-engine (TensorRT-RTX on the CPU, accuracy gate on 50 held-out good images) keeps
# the converted ONNX, and edge-eval measures it on the test set under ONNX Runtime.
set -u
cd "$(dirname "$0")"
data=../../../shared/data/magnetic_tile
for m in ${@:-unet renet_d}; do
  for p in fp32 fp16 int8 int8max; do
    case $p in fp32) flag="";; fp16) flag="--fp16";; int8) flag="--int8";; int8max) flag="--int8 --calib-method max";; esac
    start=$(date +%s.%N)
    build-engine runs/$m/model.onnx -o runs/$m/model.$p.plan $flag --calib-dir $data --gate-images 50 \
      --save-onnx runs/$m/model.$p.onnx --rebuild > runs-$m.$p.build.log 2>&1
    rc=$?
    end=$(date +%s.%N)
    [ $p = fp32 ] && cp runs/$m/model.onnx runs/$m/model.fp32.onnx
    edge-eval --model runs/$m/model.$p.onnx --data $data --out runs/$m/eval_$p > runs-$m.$p.eval.log 2>&1
    echo "$m $p: build-engine rc=$rc in $(echo "$end - $start" | bc) s; $(tail -1 runs-$m.$p.eval.log)"
  done
done
