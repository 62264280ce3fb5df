"""Speed and memory of MLLA against Swin-T, ResNet-50 and ConvNeXt-T, in one process: a table, JSON, results CSV.

    # backbones alone, 2x3x800x1344, bf16 autocast, MLLA-T's fast path: forward+backward, and with fused AdamW
    python tools/analysis/benchmark.py --level backbone --arch tiny --shape 800 1344 --batch 2 --precision bf16 \
        --attn-impl fast --peers mlla convnext_t --adamw none fused --results results.csv
    # whole Mask R-CNN (or UperNet) of a config, backbone swapped for each peer, fp16 autocast, the config's optimizer
    python tools/analysis/benchmark.py --level model --config configs/detection/mask_rcnn_mlla_t.py \
        --shape 800 1344 --batch 2 --precision fp16 --attn-impl plain fast --peers mlla swin_t

MLLA's fast-path options go in as --fast-cfg KEY=VALUE (MLLA's fast_cfg). Timings are medians over --iters
iterations after --warmup ones (CUDA events on a GPU; wall clock on the CPU, where --iters should be small).
--results appends one line per measured value (date, commit, card, torch version, task, model, input, precision,
measure, value, unit); --json writes everything with the machine and the arguments.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from mlla_mm.analysis.benchmark import main  # noqa: E402

if __name__ == '__main__':
    main()
