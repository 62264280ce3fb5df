#!/usr/bin/env bash
# Session 8, device call 1 (fresh machine; call 2, meant for the same machine, found a fresh one and stopped):
# the stack without mmcv first (the backbone needs only mmengine), mmcv's
# CUDA ops built at low priority beside; the diagnosis of the two failing bf16 train-step tests at HEAD (three
# ways: as the test does, without CUDA graphs, with Inductor's tiling coalescing analysis off); and cold compiles
# of what call 2 times: 128x224 fp16 inference at HEAD (block-diagonal K'V) and at f443798 (before it), and the
# 2x800x1344 train step in bf16 and fp16 at HEAD.
source benchmarks/scripts/device_call.sh
L=/tmp/l1; mkdir -p $L
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl > $L/setup.log 2>&1
python3 -m pip install -q --no-deps --no-build-isolation -e . >> $L/setup.log 2>&1
python3 -c 'import torch, mlla_mm, timm; print(torch.__version__, torch.cuda.get_device_name())' | tee -a $L/setup.log
echo "stack without mmcv at $(elapsed) s"
( work=/tmp/mmcv_build; mkdir -p $work; tar xzf .gpu/wheels/mmcv-2.1.0.tar.gz -C $work
  cd $work/mmcv-2.1.0 && MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=6 timeout $(left 575) nice -n 19 \
    python3 setup.py bdist_wheel > $L/mmcv_build.log 2>&1 && w=$(ls dist/*.whl) && \
    split -b 15M $w "$OUT/$(basename $w).part-" && echo "mmcv built at $(( $(date +%s) - call_t0 )) s" ) &
W="--level backbone --arch tiny --attn-impl fast --peers mlla --warmup 1 --iters 1"
export COMPILE_CACHE=.gpu/compile_cache
bench_until 560 $L warm_224_fp16_head $W --no-train --batch 128 --shape 224 224 --precision fp16 &
( cd .gpu/trees/f443798 && timeout $(left 560) python3 tools/analysis/benchmark.py $W --no-train --batch 128 \
    --shape 224 224 --precision fp16 > $L/warm_224_fp16_f443798.log 2>&1; echo "  (f443798 warm done at $(elapsed) s)" ) &
bench_until 560 $L warm_train_bf16_fp16_head $W --shape 800 1344 --batch 2 --precision bf16 fp16 --adamw none &
for flags in "" "--no-graphs" "--no-coalesce"; do
  name=diag${flags// /_}
  ( timeout $(left 540) python3 .gpu/diag_train_blocks.py $flags > $L/$name.log 2>&1
    echo "  ($name done at $(elapsed) s)"; grep -E "RESULT|FAIL|Error" $L/$name.log | head -8 ) &
done
wait
for f in $L/diag*.log; do echo "== $f"; grep -v pow_by_natural $f | grep -v "warnings.warn" | head -60 | cut -c1-220; done
python3 -c 'import mmcv' 2>/dev/null || { pip install -q --no-deps /tmp/mmcv_build/mmcv-2.1.0/dist/*.whl 2>/dev/null && echo "mmcv installed"; }
tail -3 $L/mmcv_build.log
tar czf $OUT/logs1.tgz -C /tmp l1
ls -la $OUT
