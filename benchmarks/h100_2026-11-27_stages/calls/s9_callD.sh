#!/usr/bin/env bash
# Session 9, device call D (fresh machine): set up, then fill the Inductor cache for call E in parallel processes:
# inference-only shapes, fp16 backbone train with compile_stages, UperNet fp16 8x512x512 with compile_stages.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
L=/tmp/ld; mkdir -p $L
bash .gpu/device_setup.sh > $L/setup.log 2>&1 || { cat $L/setup.log; exit 1; }
tail -1 $L/setup.log; echo "setup done at $(( $(date +%s) - t0 )) s"
B="python3 tools/analysis/benchmark.py --arch tiny --attn-impl fast --peers mlla --warmup 1 --iters 2"
F='jit.script_method|^ +warnings.warn'
warm() { local name=$1; shift
  ( timeout $(left 560) $B "$@" 2>&1 | grep -v -E "$F"; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_$name.log & }
warm fp16_stages --level backbone --shape 800 1344 --batch 2 --precision fp16 --compile-stages on
warm upernet_fp16 --level model --config configs/segmentation/upernet_mlla_t.py --shape 512 512 --batch 8 --precision fp16 --compile-stages on
warm infer1 --level backbone --no-train --batch 1 --shape 800 1344 --precision bf16
warm infer2 --level backbone --no-train --batch 1 --shape 512 512 --precision bf16
warm infer3 --level backbone --no-train --batch 128 --shape 224 224 --precision fp16
wait
for f in $L/warm*.log; do echo "== $f"; grep -E "^mlla|exit at|rror|failed" $f | cut -c1-300; done
du -sh .inductor_cache
