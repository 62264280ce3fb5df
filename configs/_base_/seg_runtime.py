# Runtime defaults of the segmentation configs (mmseg scope, iteration-based logging).
default_scope = 'mmseg'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=16000),  # = val_interval of the 160k schedule
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # drawing is off by default; `test.py --show` / `--show-dir` switch it on
    visualization=dict(type='SegVisualizationHook'))

# cuDNN's autotuning off (mmseg's configs have it on): with it, every new convolution shape has cuDNN time its
# kernels and compile some of them at run time, which a new machine pays in the first step and evaluation at every
# new image size; with the backbone's depthwise convolutions on Triton, the steps are no slower (docs/speed.md)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False

# model wrapper of multi-scale + flip testing (`test.py --tta`, with the dataset's `tta_pipeline`)
tta_model = dict(type='SegTTAModel')
