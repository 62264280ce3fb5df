"""Inference on image files with a trained detector or segmentor, and pictures of the results."""
import os
import os.path as osp
from typing import List, Sequence

import mmcv
import numpy as np
import torch
from mmengine.config import Config

from ..checkpoint import safe_torch_load, unwrap_state_dict
from ..checkpoint.official import check_shapes
from .pictures import picture_paths
from .runner import convert_syncbn, task_of

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(path: str) -> List[str]:
    """``path`` itself if it is a file, else the images in the folder (sorted)."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'no such image or folder: {path}')
    images = sorted(osp.join(path, name) for name in os.listdir(path) if name.lower().endswith(IMAGE_SUFFIXES))
    if not images:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in folder {path}')
    return images


def read_image(path: str) -> np.ndarray:
    """The image as an RGB array; an unreadable file is an error that names it."""
    try:
        image = mmcv.imread(path, channel_order='rgb')
    except Exception as err:  # mmcv raises for some corrupt files and returns None for others
        raise ValueError(f'cannot read image {path}: {err}') from err
    if image is None:
        raise ValueError(f'cannot read image {path}: not an image file or corrupt')
    return image


def check_checkpoint_fits(model: torch.nn.Module, checkpoint_path: str) -> None:
    """Stop with a clear message when a checkpoint was not trained for this config (keys or shapes differ)."""
    if not osp.isfile(checkpoint_path):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint_path}')
    weights = unwrap_state_dict(safe_torch_load(checkpoint_path), checkpoint_path)
    weights = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in weights.items()}
    own = model.state_dict()
    check_shapes(own, weights, f'checkpoint {checkpoint_path} does not fit the config', hint='')
    missing = [k for k in own if k not in weights and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        raise ValueError(f'checkpoint {checkpoint_path} does not fit the config: {len(missing)} of the model\'s '
                         f'tensors are not in it (e.g. {", ".join(missing[:3]) or "-"}) and {len(unexpected)} of '
                         f'its tensors are not in the model (e.g. {", ".join(unexpected[:3]) or "-"})')


def init_model(cfg: Config, checkpoint: str, device: str):
    """The config's model with the checkpoint's weights, in eval mode, for single-image inference."""
    task = task_of(cfg)
    convert_syncbn(cfg.model)
    if task == 'mmdet':
        from mmdet.apis import init_detector
        model = init_detector(cfg, None, device=device)
    else:
        from mmseg.apis import init_model as init_segmentor
        model = init_segmentor(cfg, None, device=device)
    check_checkpoint_fits(model, checkpoint)
    from mmengine.runner import load_checkpoint
    checkpoint_data = load_checkpoint(model, checkpoint, map_location='cpu')
    meta = checkpoint_data.get('meta', {}) if isinstance(checkpoint_data, dict) else {}
    if meta.get('dataset_meta'):
        model.dataset_meta = meta['dataset_meta']
    elif not getattr(model, 'dataset_meta', None):
        classes = cfg.get('test_dataloader', {}).get('dataset', {}).get('metainfo', {}).get('classes')
        model.dataset_meta = dict(classes=classes) if classes else {}
    classes = model.dataset_meta.get('classes')
    if classes and not model.dataset_meta.get('palette'):  # the visualisers need one colour per class
        rng = np.random.default_rng(0)
        model.dataset_meta['palette'] = [tuple(int(c) for c in rng.integers(0, 255, 3)) for _ in classes]
    model.cfg = cfg
    return task, model.to(device).eval()


def predict_and_draw(cfg: Config, checkpoint: str, images: Sequence[str], out_dir: str, device: str = None,
                     score_thr: float = 0.3, opacity: float = 0.5) -> List[str]:
    """Predict on each image and save it with the predictions drawn (boxes and masks, or the class map)."""
    device = device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    out_files = picture_paths(images, out_dir)  # one per image, never an input's path
    arrays = [read_image(path) for path in images]  # every image is checked before the model is built
    task, model = init_model(cfg, checkpoint, device)
    if task == 'mmdet':
        from mmdet.apis import inference_detector
        from mmdet.registry import VISUALIZERS
        visualizer = VISUALIZERS.build(dict(type='DetLocalVisualizer', name='mlla_mm_demo', alpha=opacity))
    else:
        from mmseg.apis import inference_model
        from mmseg.registry import VISUALIZERS
        visualizer = VISUALIZERS.build(dict(type='SegLocalVisualizer', name='mlla_mm_demo', alpha=opacity))
    visualizer.dataset_meta = model.dataset_meta
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for path, image, out_file in zip(images, arrays, out_files):
        bgr = np.ascontiguousarray(image[..., ::-1])
        result = inference_detector(model, bgr) if task == 'mmdet' else inference_model(model, bgr)
        kwargs = dict(pred_score_thr=score_thr) if task == 'mmdet' else {}
        visualizer.add_datasample(osp.basename(path), image, result, draw_gt=False, show=False,
                                  out_file=out_file, **kwargs)
        written.append(out_file)
    return written
