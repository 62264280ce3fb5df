"""Inference on image files with a trained detector or segmentor, and pictures of the results."""
import os
import os.path as osp
from typing import List, Sequence

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..checkpoint import safe_torch_load
from ..checkpoint.model_checkpoint import checkpoint_dataset_meta, load_model_checkpoint
from .config import task_of
from .distributed import convert_syncbn
from .pictures import picture_paths

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


def load_fitting_checkpoint(model: torch.nn.Module, checkpoint_path: str) -> dict:
    """Load a whole-model checkpoint into ``model`` under the rule of :mod:`mlla_mm.checkpoint.model_checkpoint`
    (a file trained for another config is refused with the keys named); return the loaded file."""
    if not osp.isfile(checkpoint_path):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint_path}')
    checkpoint = safe_torch_load(checkpoint_path)
    report = load_model_checkpoint(model, checkpoint, checkpoint_path)
    if report:
        print_log(report, logger='current')
    return checkpoint


def init_model(cfg: Config, checkpoint: str, device: str):
    """The config's model with the checkpoint's weights, in eval mode, for single-image inference.

    Class names and palette come from the checkpoint (mmengine's ``dataset_meta``, or ``CLASSES`` / ``PALETTE``
    of an mmdet 2.x / mmseg 0.x file such as the official release), else from the config's test dataset.
    """
    task = task_of(cfg)
    convert_syncbn(cfg.model)
    if task == 'mmdet':
        from mmdet.apis import init_detector
        model = init_detector(cfg, None, device=device)
    else:
        from mmseg.apis import init_model as init_segmentor
        model = init_segmentor(cfg, None, device=device)
    checkpoint_data = load_fitting_checkpoint(model, checkpoint)
    dataset_meta = checkpoint_dataset_meta(checkpoint_data)
    if dataset_meta.get('classes'):
        model.dataset_meta = dataset_meta
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
