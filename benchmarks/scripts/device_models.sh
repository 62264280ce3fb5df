#!/usr/bin/env bash
# The whole-model speed runs of the README's Speed section, on a GPU machine: Mask R-CNN (2x800x1344) and UperNet
# (8x512x512), fp16 autocast, MLLA-T plain and fast against Swin-T, each model's three rows from one process.
# Results (JSON and logs) go to ${OUT:-benchmarks/latest}; the Inductor cache to ${TORCHINDUCTOR_CACHE_DIR}.
#   bash benchmarks/scripts/device_models.sh [plain fast ...]
# The fast path's fp16 training graphs (with the configs' drop-path masks) take about 5 minutes to compile on a cold
# Inductor cache on the H100 host: fill the cache first (benchmarks/scripts/warm_backbone.py CONFIG with each row's
# --shape and --batch, which needs no mmcv), then time with a warm one. Even warm, each
# fast variant spends about a minute per kind of call tracing and loading graphs (benchmarks/h100_2026-11-27/).
# LIMITS="300 300" sets the two rows' time limits in seconds. FAST_KERNELS, COMPILE_STAGES and ADAMW as in
# device_speed.sh, but ADAMW defaults to "config": the config's own optimizer wrapper, as training steps it.
ADAMW=${ADAMW:-config}
source "$(dirname "$0")/bench_common.sh"
impls=${*:-plain fast}
read_limits 2 "300 300"
models="--level model --precision fp16 --attn-impl $impls --peers mlla swin_t --warmup 5 --iters 20"
bench mask_rcnn_2x800x1344_fp16 ${limits[0]} $models --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 --batch 2
bench upernet_8x512x512_fp16 ${limits[1]} $models --config configs/segmentation/upernet_mlla_t.py --shape 512 512 --batch 8
