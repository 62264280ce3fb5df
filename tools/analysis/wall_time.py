"""The whole wall time of real jobs, compiling included: MLLA-T (auto, fast, plain) and Swin-T, cold and warm cache.

    # everything (on a GPU; the fast path's cold runs compile for minutes), results appended to a CSV
    python tools/analysis/wall_time.py --work-dir work_dirs/wall_time --results wall_time.csv
    # the configs as they are against Swin-T, Mask R-CNN training alone, cold cache only
    python tools/analysis/wall_time.py --jobs train300 --models mlla_auto swin_t --cache cold --results wall_time.csv
    # write the data, configs and checkpoints and print each command with its cache folders; run nothing
    python tools/analysis/wall_time.py --dry-run

Each job is a process of tools/train.py, tools/test.py or tools/demo.py, timed from its launch to its exit; a cold
run gets empty TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR folders, the warm run after it the same folders. The
jobs, the configs they run (mmdet's and mmseg's own for Swin-T) and what is changed in them are described in
mlla_mm/analysis/wall_time.py. A failed or timed-out job writes no line, its log's end is printed, and the exit
status is 1.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from mlla_mm.analysis.wall_time import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
