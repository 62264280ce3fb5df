"""Synthetic demo data: small shape datasets in COCO-instance and ADE20K-semantic layouts, for `make demo`
(tools/run_demo.py) and tools/make_demo_data.py, which import it from this folder.

Every image shows a noisy, textured background with 1-6 filled shapes of three classes (``DEMO_CLASSES``).
Objects are drawn in order, so a later one hides what it covers; all annotations describe the *visible* part of
each object: the instance mask is rasterised exactly (no anti-aliasing), the COCO RLE is computed from it with
pycocotools, ``bbox`` is its tight box and ``area`` its pixel count. A placement that would leave an earlier object
with only a sliver visible is rejected and re-drawn, so every painted object pixel belongs to an annotated instance.

Generation is deterministic for a seed (numpy's PCG64 seeded per image with ``(seed, dataset, split, index)``), and
train / val use different streams. A dataset is built in a hidden temporary folder next to its destination and moved
into place only when complete, with a marker file (``MARKER_NAME``: generator version, parameters, summary) written
last, so an interrupted generation never looks complete and ``ensure_demo_data`` simply builds it again.

Layouts::

    <root>/coco/train/000000.jpg ...            <root>/ade/images/training/demo_train_000000.jpg ...
    <root>/coco/val/000000.jpg ...              <root>/ade/images/validation/demo_val_000000.jpg ...
    <root>/coco/annotations/instances_train.json <root>/ade/annotations/training/demo_train_000000.png ...
    <root>/coco/annotations/instances_val.json   <root>/ade/annotations/validation/demo_val_000000.png ...

ADE label maps are uint8 with 0 = background (ignored with mmseg's ``reduce_zero_label=True``) and 1..3 = classes.
"""
from __future__ import annotations

import colorsys
import contextlib
import json
import math
import os
import os.path as osp
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    'DEMO_CLASSES', 'GENERATOR_VERSION', 'MARKER_NAME', 'render_scene', 'make_coco_instances', 'make_ade_semantic',
    'ensure_demo_data', 'is_complete', 'read_marker'
]

DEMO_CLASSES: Tuple[str, ...] = ('square', 'circle', 'triangle')
# Bump whenever the produced bytes change, so that ensure_demo_data rebuilds data made by an older generator.
GENERATOR_VERSION = 1
MARKER_NAME = '.mlla_mm_demo.json'

DEFAULT_NUM_TRAIN = 200
DEFAULT_NUM_VAL = 50
DEFAULT_IMAGE_SIZE = 256

_REF_SIDE = 256.0  # object sizes and thresholds below are given for a 256-pixel image and scaled with the image
_SIZE_RANGE = (24.0, 110.0)  # extent of a shape (square side, circle diameter, triangle side), in pixels
_MAX_OBJECTS = 6
_PLACEMENT_TRIES = 40
_MIN_VISIBLE_FRACTION = 0.35  # an occluded object keeps at least this share of its own area ...
_MIN_VISIBLE_PIXELS = 120  # ... and at least this many pixels (at 256 px)
_MIN_BG_CONTRAST = 75.0  # Euclidean BGR distance between an object's colour and what it is drawn over
_MIN_OBJ_CONTRAST = 60.0
_JPEG_QUALITY = 95
_SHIFT = 4  # fixed-point bits for sub-pixel vertex positions in cv2 drawing
_SPLIT_KEYS = {'train': 1, 'val': 2}
_DATASET_KEYS = {'coco': 11, 'ade': 12}

Size = Union[int, Sequence[int]]


# ----------------------------------------------------------------------------------------------------------------
# scene rendering
# ----------------------------------------------------------------------------------------------------------------
def _hw(image_size: Size) -> Tuple[int, int]:
    """``image_size`` as (height, width): an int means a square image."""
    if isinstance(image_size, (int, np.integer)):
        h = w = int(image_size)
    else:
        h, w = (int(v) for v in image_size)
    if min(h, w) < 64:
        raise ValueError(f'image_size must be at least 64 pixels per side, got {(h, w)}')
    return h, w


def _hsv_bgr(h: float, s: float, v: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return np.array([b, g, r], dtype=np.float32) * 255.0


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Float32 BGR background: a two-colour gradient, low-frequency blotches, faint stripes and pixel noise."""
    c0 = _hsv_bgr(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.25, 0.75))
    c1 = _hsv_bgr(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.25, 0.75))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    t = xs * math.cos(angle) + ys * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    img = c0 + (c1 - c0) * t[..., None]

    cell = int(rng.integers(16, 48))
    coarse = rng.standard_normal((h // cell + 3, w // cell + 3, 3), dtype=np.float32)
    img += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * np.float32(rng.uniform(8.0, 22.0))

    freq = rng.uniform(0.04, 0.25)
    phase = rng.uniform(0.0, 2.0 * math.pi)
    direction = rng.uniform(0.0, math.pi)
    stripes = np.sin((xs * math.cos(direction) + ys * math.sin(direction)) * freq + phase)
    img += (stripes * np.float32(rng.uniform(0.0, 10.0)))[..., None]

    fine = rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(rng.uniform(4.0, 12.0))
    img += cv2.GaussianBlur(fine, (3, 3), 0.8)
    return img


def _shape_mask(rng: np.random.Generator, cls: int, h: int, w: int, scale: float) -> np.ndarray:
    """Random shape of class ``cls`` (0 square, 1 circle, 2 triangle) rasterised as a uint8 0/1 mask, fully inside
    the image."""
    lo, hi = _SIZE_RANGE
    hi = min(hi * scale, 0.6 * min(h, w))
    extent = rng.uniform(lo * scale, hi)
    mask = np.zeros((h, w), np.uint8)
    one = 1 << _SHIFT
    if cls == 1:  # circle
        r = extent / 2.0
        cx = rng.uniform(r + 1, w - r - 1)
        cy = rng.uniform(r + 1, h - r - 1)
        cv2.circle(mask, (int(round(cx * one)), int(round(cy * one))), int(round(r * one)), 1, -1, cv2.LINE_8,
                   _SHIFT)
        return mask
    theta = rng.uniform(0.0, 2.0 * math.pi)
    if cls == 0:  # square of side `extent`, any rotation
        angles = theta + np.arange(4) * (math.pi / 2.0)
        radii = np.full(4, extent / math.sqrt(2.0))
    else:  # triangle of side about `extent`, vertices jittered a little so triangles are not all equilateral
        angles = theta + np.arange(3) * (2.0 * math.pi / 3.0) + rng.uniform(-0.15, 0.15, 3)
        radii = extent / math.sqrt(3.0) * rng.uniform(0.88, 1.12, 3)
    pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    lo_xy, hi_xy = pts.min(0), pts.max(0)
    cx = rng.uniform(1 - lo_xy[0], w - 2 - hi_xy[0])
    cy = rng.uniform(1 - lo_xy[1], h - 2 - hi_xy[1])
    pts = np.round((pts + (cx, cy)) * one).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, _SHIFT)
    return mask


def _object_colour(rng: np.random.Generator, under: np.ndarray, avoid: List[np.ndarray]) -> np.ndarray:
    """A saturated colour far from ``under`` (mean of what the object covers) and from the colours in ``avoid``."""
    best, best_score = None, -1.0
    for _ in range(24):
        colour = _hsv_bgr(rng.random(), rng.uniform(0.55, 1.0), rng.uniform(0.45, 1.0))
        score = min([float(np.linalg.norm(colour - under)) / _MIN_BG_CONTRAST] +
                    [float(np.linalg.norm(colour - c)) / _MIN_OBJ_CONTRAST for c in avoid])
        if score >= 1.0:
            return colour
        if score > best_score:
            best, best_score = colour, score
    return best


def render_scene(rng: np.random.Generator, image_size: Size = DEFAULT_IMAGE_SIZE):
    """Draw one scene.

    Returns ``(image, instance_map, classes)``: the uint8 BGR image (H, W, 3); an int32 map (H, W) where 0 is
    background and ``k >= 1`` marks pixels where instance ``k - 1`` is visible; and the 0-based class index of every
    instance (index into ``DEMO_CLASSES``). Every instance is visible on at least ``_MIN_VISIBLE_PIXELS`` (scaled)
    pixels and ``_MIN_VISIBLE_FRACTION`` of its own area.
    """
    h, w = _hw(image_size)
    scale = min(h, w) / _REF_SIDE
    min_pixels = _MIN_VISIBLE_PIXELS * scale * scale
    img = _background(rng, h, w)
    inst = np.zeros((h, w), np.int32)
    classes: List[int] = []
    full_areas: List[int] = []
    visible: List[int] = []
    colours: List[np.ndarray] = []
    for _ in range(int(rng.integers(1, _MAX_OBJECTS + 1))):
        cls = int(rng.integers(0, len(DEMO_CLASSES)))
        for _try in range(_PLACEMENT_TRIES):
            mask = _shape_mask(rng, cls, h, w, scale).astype(bool)
            area = int(mask.sum())
            if area < min_pixels:
                continue
            covered = inst[mask]
            hidden = np.bincount(covered, minlength=len(classes) + 1)[1:]
            left = np.asarray(visible, np.int64) - hidden
            if all(left[j] >= min_pixels and left[j] >= _MIN_VISIBLE_FRACTION * full_areas[j]
                   for j in np.flatnonzero(hidden)):
                break
        else:
            continue  # no acceptable placement for this object: the scene gets one object fewer
        under_bg = img[mask & (inst == 0)]
        under = under_bg.mean(0) if len(under_bg) else img[mask].mean(0)
        avoid = [colours[j] for j in np.flatnonzero(hidden)]
        colour = _object_colour(rng, under, avoid)
        # flat colour with a gentle shading ramp and pixel noise, so objects are not perfectly uniform
        n = int(mask.sum())
        ramp = rng.uniform(-18.0, 18.0)
        ys = np.nonzero(mask)[0].astype(np.float32)
        shade = (ys - ys.mean()) / max(float(np.ptp(ys)), 1.0) * np.float32(ramp)
        img[mask] = colour + shade[:, None] + rng.standard_normal((n, 3), dtype=np.float32) * np.float32(5.0)
        visible = [v - int(hd) for v, hd in zip(visible, hidden)] + [area]
        inst[mask] = len(classes) + 1
        classes.append(cls)
        full_areas.append(area)
        colours.append(colour)
    img += rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(2.0)
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return image, inst, classes


def _scene_rng(seed: int, dataset: str, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _DATASET_KEYS[dataset], _SPLIT_KEYS[split], int(index)])


# ----------------------------------------------------------------------------------------------------------------
# file writing helpers
# ----------------------------------------------------------------------------------------------------------------
def _write_image(path: str, image: np.ndarray) -> None:
    ext = osp.splitext(path)[1].lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY] if ext in ('.jpg', '.jpeg') else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise RuntimeError(f'could not encode {path}')
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def _write_json(path: str, obj) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, separators=(',', ':'))
    os.replace(tmp, path)


def read_marker(root: str) -> Optional[dict]:
    """The marker of a generated dataset folder, or None when it is missing or unreadable."""
    try:
        with open(osp.join(root, MARKER_NAME), encoding='utf-8') as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _params(kind: str, num_train: int, num_val: int, image_size: Size, seed: int) -> dict:
    h, w = _hw(image_size)
    if num_train < 1 or num_val < 1:
        raise ValueError(f'num_train and num_val must be >= 1, got {num_train}, {num_val}')
    return dict(kind=kind, num_train=int(num_train), num_val=int(num_val), image_size=[h, w], seed=int(seed))


@contextlib.contextmanager
def _staging(root: str):
    """Yield a fresh hidden folder next to ``root``; on success it replaces ``root``, on any error it is removed.

    Refuses to replace an existing non-empty ``root`` that this generator did not make (no marker), so that pointing
    the generator at a real dataset folder cannot wipe it.
    """
    root = osp.abspath(root)
    parent, name = osp.split(root)
    os.makedirs(parent, exist_ok=True)
    if osp.lexists(root) and not osp.isdir(root):
        raise FileExistsError(f'{root} exists and is not a folder')
    if osp.isdir(root) and os.listdir(root) and read_marker(root) is None:
        raise FileExistsError(f'{root} exists, is not empty and was not made by the demo-data generator '
                              f'(no {MARKER_NAME}); remove it or choose another folder')
    stage = tempfile.mkdtemp(prefix=f'.{name}.partial-', dir=parent)
    os.chmod(stage, 0o755)  # mkdtemp makes it private; the finished dataset should be an ordinary folder
    try:
        yield stage
        if osp.lexists(root):
            old = tempfile.mkdtemp(prefix=f'.{name}.old-', dir=parent)
            os.rename(root, osp.join(old, name))
            os.rename(stage, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(stage, root)
    finally:
        if osp.isdir(stage):
            shutil.rmtree(stage, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------------------------
def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def _in_parallel(fn, num: int) -> list:
    """``[fn(0), ..., fn(num - 1)]``, computed on threads: each image has its own random stream, so the result does
    not depend on the order, and drawing, noise and JPEG encoding run outside the GIL. On an error (or Ctrl-C) the
    images not yet started are dropped."""
    workers = min(num, _usable_cpus(), 16)
    if workers <= 1:
        return [fn(i) for i in range(num)]
    pool = ThreadPoolExecutor(workers)
    try:
        return list(pool.map(fn, range(num)))
    finally:
        pool.shutdown(cancel_futures=True)


def _coco_image(stage: str, split: str, i: int, size: Size, seed: int) -> Tuple[dict, List[dict]]:
    """Image ``i`` of a COCO split written to ``stage``: its image entry and its annotations (without their ids)."""
    from pycocotools import mask as mask_utils

    image, inst, classes = render_scene(_scene_rng(seed, 'coco', split, i), size)
    h, w = image.shape[:2]
    file_name = f'{i:06d}.jpg'
    _write_image(osp.join(stage, split, file_name), image)
    annotations = []
    for k, cls in enumerate(classes):
        mask = np.asfortranarray((inst == k + 1).astype(np.uint8))
        rle = mask_utils.encode(mask)
        x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
        annotations.append(dict(image_id=i + 1, category_id=cls + 1,
                                segmentation=dict(size=[h, w], counts=rle['counts'].decode('ascii')),
                                area=int(mask.sum()), bbox=[x, y, bw, bh], iscrowd=0))
    return dict(id=i + 1, file_name=file_name, height=h, width=w), annotations


def _coco_split(stage: str, split: str, num: int, size: Size, seed: int) -> dict:
    os.makedirs(osp.join(stage, split), exist_ok=True)
    images, annotations = [], []
    for image, image_annotations in _in_parallel(lambda i: _coco_image(stage, split, i, size, seed), num):
        images.append(image)
        annotations += [dict(id=len(annotations) + n + 1, **ann) for n, ann in enumerate(image_annotations)]
    categories = [dict(id=c + 1, name=n, supercategory='shape') for c, n in enumerate(DEMO_CLASSES)]
    info = dict(description=f'mlla-mm synthetic shapes ({split})', version=str(GENERATOR_VERSION))
    ann_file = osp.join('annotations', f'instances_{split}.json')
    _write_json(osp.join(stage, ann_file),
                dict(info=info, licenses=[], images=images, annotations=annotations, categories=categories))
    return dict(images=len(images), instances=len(annotations), img_dir=f'{split}/', ann_file=ann_file)


def make_coco_instances(root: str, num_train: int = DEFAULT_NUM_TRAIN, num_val: int = DEFAULT_NUM_VAL,
                        image_size: Size = DEFAULT_IMAGE_SIZE, seed: int = 0) -> dict:
    """Write a synthetic COCO-format instance dataset to ``root`` (replacing a previous one) and return its marker.

    ``image_size`` is an int (square) or (height, width). Layout: ``root/{train,val}/NNNNNN.jpg`` and
    ``root/annotations/instances_{train,val}.json``; category ids 1..3 are ``DEMO_CLASSES``.
    """
    params = _params('coco', num_train, num_val, image_size, seed)
    with _staging(root) as stage:
        os.makedirs(osp.join(stage, 'annotations'))
        summary = {split: _coco_split(stage, split, num, image_size, seed)
                   for split, num in (('train', num_train), ('val', num_val))}
        marker = dict(generator='tools/demo_data.py', version=GENERATOR_VERSION, params=params,
                      classes=list(DEMO_CLASSES), summary=summary)
        _write_json(osp.join(stage, MARKER_NAME), marker)  # last: its presence means the folder is complete
    return marker


_ADE_SPLITS = (('train', 'training'), ('val', 'validation'))


def _ade_image(stage: str, img_dir: str, ann_dir: str, split: str, i: int, size: Size, seed: int) -> np.ndarray:
    """Image ``i`` of an ADE split and its label map written to ``stage``; returns the label map's pixels per class
    (background first)."""
    image, inst, classes = render_scene(_scene_rng(seed, 'ade', split, i), size)
    label = np.array([0] + [c + 1 for c in classes], np.uint8)[inst]
    stem = f'demo_{split}_{i:06d}'
    _write_image(osp.join(stage, img_dir, stem + '.jpg'), image)
    _write_image(osp.join(stage, ann_dir, stem + '.png'), label)
    return np.bincount(label.ravel(), minlength=len(DEMO_CLASSES) + 1).astype(np.int64)


def make_ade_semantic(root: str, num_train: int = DEFAULT_NUM_TRAIN, num_val: int = DEFAULT_NUM_VAL,
                      image_size: Size = DEFAULT_IMAGE_SIZE, seed: int = 0) -> dict:
    """Write a synthetic semantic-segmentation dataset in ADE20K's layout to ``root`` and return its marker.

    ``root/images/{training,validation}/demo_<split>_NNNNNN.jpg`` with label maps of the same stem in
    ``root/annotations/{training,validation}/*.png``: uint8, 0 = background, 1..3 = ``DEMO_CLASSES``.
    """
    params = _params('ade', num_train, num_val, image_size, seed)
    with _staging(root) as stage:
        summary = {}
        for (split, folder), num in zip(_ADE_SPLITS, (num_train, num_val)):
            img_dir, ann_dir = osp.join('images', folder), osp.join('annotations', folder)
            os.makedirs(osp.join(stage, img_dir))
            os.makedirs(osp.join(stage, ann_dir))
            pixels = np.zeros(len(DEMO_CLASSES) + 1, np.int64)
            for counts in _in_parallel(lambda i: _ade_image(stage, img_dir, ann_dir, split, i, image_size, seed), num):
                pixels += counts
            summary[split] = dict(images=num, img_dir=img_dir + '/', ann_dir=ann_dir + '/',
                                  class_pixels=dict(zip(('background', ) + DEMO_CLASSES, pixels.tolist())))
        marker = dict(generator='tools/demo_data.py', version=GENERATOR_VERSION, params=params,
                      classes=list(DEMO_CLASSES), summary=summary)
        _write_json(osp.join(stage, MARKER_NAME), marker)
    return marker


def _expected_files(kind: str, params: dict) -> Dict[str, Tuple[str, int]]:
    """folder -> (file extension, count) that a complete dataset holds."""
    n = dict(train=params['num_train'], val=params['num_val'])
    if kind == 'coco':
        return {'train': ('.jpg', n['train']), 'val': ('.jpg', n['val']), 'annotations': ('.json', 2)}
    out = {}
    for split, folder in _ADE_SPLITS:
        out[osp.join('images', folder)] = ('.jpg', n[split])
        out[osp.join('annotations', folder)] = ('.png', n[split])
    return out


def is_complete(root: str, kind: str, num_train: int = DEFAULT_NUM_TRAIN, num_val: int = DEFAULT_NUM_VAL,
                image_size: Size = DEFAULT_IMAGE_SIZE, seed: int = 0) -> bool:
    """Whether ``root`` holds a finished ``kind`` ('coco' or 'ade') dataset of this generator version and these
    parameters, with all its files."""
    params = _params(kind, num_train, num_val, image_size, seed)
    marker = read_marker(root)
    if not marker or marker.get('version') != GENERATOR_VERSION or marker.get('params') != params:
        return False
    for folder, (ext, count) in _expected_files(kind, params).items():
        try:
            names = [n for n in os.listdir(osp.join(root, folder)) if n.endswith(ext)]
        except OSError:
            return False
        if len(names) != count:
            return False
    return True


@contextlib.contextmanager
def _lock(path: str):
    """Inter-process lock (POSIX flock), so that several ranks calling ensure_demo_data generate only once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    with open(path, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_demo_data(root: str = 'data/demo', num_train: int = DEFAULT_NUM_TRAIN, num_val: int = DEFAULT_NUM_VAL,
                     image_size: Size = DEFAULT_IMAGE_SIZE, seed: int = 0, force: bool = False) -> Dict[str, str]:
    """Make sure ``root/coco`` (COCO instances) and ``root/ade`` (ADE20K-style semantic) exist for these
    parameters; generate whichever is missing, incomplete, stale or (with ``force``) all of them.

    Returns ``{'coco': <abs path>, 'ade': <abs path>}``. A second call with the same arguments touches nothing.
    """
    root = osp.abspath(root)
    os.makedirs(root, exist_ok=True)
    paths = dict(coco=osp.join(root, 'coco'), ade=osp.join(root, 'ade'))
    makers = dict(coco=make_coco_instances, ade=make_ade_semantic)
    with _lock(osp.join(root, '.lock')):
        for kind, path in paths.items():
            if force or not is_complete(path, kind, num_train, num_val, image_size, seed):
                makers[kind](path, num_train=num_train, num_val=num_val, image_size=image_size, seed=seed)
    return paths
