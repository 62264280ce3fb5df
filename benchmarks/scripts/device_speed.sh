#!/usr/bin/env bash
# The backbone speed runs of the README's Speed section, on a GPU machine, each against ConvNeXt-T in the same
# process. Results (JSON and logs) go to ${OUT:-benchmarks/latest}; the Inductor cache to ${TORCHINDUCTOR_CACHE_DIR}.
#   bash benchmarks/scripts/device_speed.sh [plain fast ...]
# With a cold Inductor cache the fast path compiles for minutes (about 4.5 min for the training graphs of MLLA-T on
# the H100 host, 1-2 min for inference), so the first run needs most of its time limit; the time limits keep the
# later runs and the copying of results inside one 10-minute device call only with a warm cache.
# LIMITS="540 90 90 150" sets the four rows' time limits in seconds. A warm cache does not make a fast-path row
# quick: Dynamo still traces and loads the compiled graphs, about a minute per fast variant and kind of call
# (inference, training) on the H100 host (benchmarks/h100_2026-11-27/), so give each row at least 90 s per variant.
# FAST_KERNELS="off on" also measures the fast path with MLLA's triton_dwconv and compile_convs in each process
# (twice the compiling).
# COMPILE_STAGES="off on all backbone" likewise measures the fast path with MLLA's compile_stages off, on (each
# stage's blocks as one compiled call in training), all (in inference too), and backbone (all, and the whole
# backbone as one compiled call: compile_backbone, the default). ADAMW="foreach fused" times the
# train step with both forms of torch's AdamW (default: foreach, torch's own default); "none" without an optimizer.
source "$(dirname "$0")/bench_common.sh"
impls=${*:-plain fast}
read_limits 4 "540 90 90 150"
backbone="--level backbone --arch tiny"
bench backbone_2x800x1344_train ${limits[0]} $backbone --shape 800 1344 --batch 2 --precision bf16 fp16 --attn-impl $impls \
  --peers mlla convnext_t --warmup 5 --iters 20
bench backbone_1x800x1344_bf16_infer ${limits[1]} $backbone --shape 800 1344 --batch 1 --precision bf16 --attn-impl $impls \
  --peers mlla convnext_t --no-train
bench backbone_1x512x512_bf16_infer ${limits[2]} $backbone --shape 512 512 --batch 1 --precision bf16 --attn-impl $impls \
  --peers mlla convnext_t --no-train
bench backbone_128x224_fp16_infer ${limits[3]} $backbone --shape 224 224 --batch 128 --precision fp16 --attn-impl $impls \
  --peers mlla convnext_t --no-train --warmup 5 --iters 20
