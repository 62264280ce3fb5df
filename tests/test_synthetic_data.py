"""tools/demo_data.py, the synthetic demo data: determinism, exact COCO annotations, ADE layout, idempotent
generation, and loading through mmdet's CocoDataset and mmseg's BaseSegDataset."""
import hashlib
import importlib.util
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.append(osp.join(REPO, 'tools'))  # tools/demo_data.py, which the demo scripts import by name

import demo_data as synthetic  # noqa: E402
from demo_data import (DEMO_CLASSES, ensure_demo_data, make_ade_semantic, make_coco_instances,  # noqa: E402
                       render_scene)

# small but non-square, so that a height/width mix-up cannot pass
SMALL = dict(num_train=8, num_val=4, image_size=(112, 144), seed=3)
H, W = SMALL['image_size']


def _files(root):
    """relative path -> absolute path of every file below root."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            out[osp.relpath(osp.join(dirpath, n), root)] = osp.join(dirpath, n)
    return out


def _digests(root):
    return {rel: hashlib.sha256(open(p, 'rb').read()).hexdigest() for rel, p in _files(root).items()}


def _stats(root):
    return {rel: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for rel, p in _files(root).items()}


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    paths = ensure_demo_data(str(root), **SMALL)
    return paths


def _load_tool():
    spec = importlib.util.spec_from_file_location('make_demo_data', osp.join(REPO, 'tools', 'make_demo_data.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------------------------------
def test_render_scene_invariants():
    counts = {c: 0 for c in range(len(DEMO_CLASSES))}
    for s in range(40):
        image, inst, classes = render_scene(np.random.default_rng(s), 256)
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        assert inst.shape == (256, 256)
        assert 1 <= len(classes) <= 6
        assert set(np.unique(inst)) <= set(range(len(classes) + 1))
        for k, c in enumerate(classes):
            assert (inst == k + 1).sum() >= synthetic._MIN_VISIBLE_PIXELS, 'an instance was left (nearly) hidden'
            counts[c] += 1
        # objects stand out from the background they are drawn on
        fg = inst > 0
        assert np.abs(image[fg].mean(0) - image[~fg].mean(0)).max() > 10 or fg.all()
    assert all(v > 5 for v in counts.values()), counts
    a = render_scene(np.random.default_rng(7), (96, 128))
    b = render_scene(np.random.default_rng(7), (96, 128))
    assert a[0].shape == (96, 128, 3) and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_same_seed_identical_other_seed_different(tmp_path):
    args = dict(num_train=4, num_val=2, image_size=96)
    make_coco_instances(str(tmp_path / 'a'), seed=5, **args)
    make_coco_instances(str(tmp_path / 'b'), seed=5, **args)
    make_coco_instances(str(tmp_path / 'c'), seed=6, **args)
    da, db, dc = (_digests(tmp_path / n) for n in 'abc')
    assert len(da) == 4 + 2 + 2 + 1
    assert da == db
    assert set(da) == set(dc)
    for rel in da:
        if rel.endswith('.jpg') or rel.startswith('annotations'):
            assert da[rel] != dc[rel], rel

    make_ade_semantic(str(tmp_path / 'ade_a'), seed=5, **args)
    make_ade_semantic(str(tmp_path / 'ade_b'), seed=5, **args)
    make_ade_semantic(str(tmp_path / 'ade_c'), seed=6, **args)
    ea, eb, ec = (_digests(tmp_path / n) for n in ('ade_a', 'ade_b', 'ade_c'))
    assert ea == eb
    assert sum(ea[r] != ec[r] for r in ea if r.endswith('.jpg')) == 6


def test_coco_annotations_exact(demo):
    root = demo['coco']
    hashes = {}
    for split, num in (('train', SMALL['num_train']), ('val', SMALL['num_val'])):
        coco = COCO(osp.join(root, 'annotations', f'instances_{split}.json'))
        assert [coco.cats[i]['name'] for i in sorted(coco.cats)] == list(DEMO_CLASSES)
        assert sorted(coco.cats) == [1, 2, 3]
        assert len(coco.imgs) == num
        assert len(coco.anns) > 0
        ann_ids = [a['id'] for a in coco.dataset['annotations']]
        assert len(set(ann_ids)) == len(ann_ids)
        for img_id, info in coco.imgs.items():
            assert (info['height'], info['width']) == (H, W)
            img = cv2.imread(osp.join(root, split, info['file_name']), cv2.IMREAD_COLOR)
            assert img is not None and img.shape == (H, W, 3)
            hashes.setdefault(split, set()).add(hashlib.sha256(img.tobytes()).hexdigest())
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
            assert 1 <= len(anns) <= 6
            union = np.zeros((H, W), np.int32)
            for ann in anns:
                assert ann['category_id'] in (1, 2, 3) and ann['iscrowd'] == 0
                assert isinstance(ann['segmentation']['counts'], str)
                m = mask_utils.decode(ann['segmentation'])
                assert np.array_equal(m, coco.annToMask(ann))
                assert m.shape == (H, W)
                assert int(m.sum()) == ann['area'] > 0
                ys, xs = np.nonzero(m)
                tight = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                assert ann['bbox'] == [float(v) for v in tight]
                union += m
            assert union.max() == 1, 'masks of one image overlap: occlusion not applied'
    assert not hashes['train'] & hashes['val'], 'train and val share an image'


def test_occlusion_updates_visible_part(monkeypatch):
    """Scripted shapes: B partly covers A (A keeps its visible part), C would hide A and is re-drawn, D is free."""
    def rect(y0, y1, x0, x1):
        m = np.zeros((256, 256), np.uint8)
        m[y0:y1, x0:x1] = 1
        return m.astype(bool)

    a, b, c, d = rect(40, 140, 40, 140), rect(40, 140, 110, 200), rect(30, 150, 30, 150), rect(180, 220, 20, 60)
    script = iter([a, b, c, d])
    monkeypatch.setattr(synthetic, '_shape_mask', lambda rng, cls, h, w, scale: next(script).astype(np.uint8))

    class ThreeObjects:
        """A Generator that asks for exactly three objects and is otherwise the real thing."""
        def __init__(self, rng):
            self.rng = rng

        def integers(self, low, high=None, *args, **kwargs):
            if (low, high) == (1, synthetic._MAX_OBJECTS + 1):
                return 3
            return self.rng.integers(low, high, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.rng, name)

    image, inst, classes = render_scene(ThreeObjects(np.random.default_rng(0)), 256)
    assert len(classes) == 3
    assert np.array_equal(inst == 1, a & ~b), 'the occluded object must keep only its visible part'
    assert np.array_equal(inst == 2, b)
    assert np.array_equal(inst == 3, d), 'a shape that would hide an earlier one must be re-drawn'
    # the overlap is painted with B's colour, not A's
    img = image.astype(np.float64)
    overlap, a_only, b_only = img[a & b].mean(0), img[a & ~b].mean(0), img[b & ~a].mean(0)
    assert np.linalg.norm(overlap - b_only) < 15 < np.linalg.norm(overlap - a_only)


def test_threads_write_the_same_files_as_one_thread(tmp_path, monkeypatch):
    """Images are made on threads; one thread or several, every file (images, label maps, annotations, marker with
    its pixel counts) is the same, byte for byte."""
    args = dict(num_train=6, num_val=3, image_size=(96, 128), seed=2)
    digests = {}
    for cpus in (1, 4):
        monkeypatch.setattr(synthetic, '_usable_cpus', lambda cpus=cpus: cpus)
        make_coco_instances(str(tmp_path / f'coco{cpus}'), **args)
        make_ade_semantic(str(tmp_path / f'ade{cpus}'), **args)
        digests[cpus] = (_digests(tmp_path / f'coco{cpus}'), _digests(tmp_path / f'ade{cpus}'))
    assert digests[1] == digests[4] and len(digests[1][0]) == 6 + 3 + 2 + 1


def test_ade_pixel_counts_are_those_of_the_label_maps(demo):
    root = demo['ade']
    marker = synthetic.read_marker(root)
    for split, folder in (('train', 'training'), ('val', 'validation')):
        labels = [cv2.imread(osp.join(root, 'annotations', folder, n), cv2.IMREAD_UNCHANGED)
                  for n in sorted(os.listdir(osp.join(root, 'annotations', folder)))]
        counts = np.bincount(np.concatenate([lab.ravel() for lab in labels]), minlength=4)
        assert marker['summary'][split]['class_pixels'] == dict(zip(('background', ) + DEMO_CLASSES, counts.tolist()))


def test_ade_layout(demo):
    root = demo['ade']
    for split, folder, num in (('train', 'training', SMALL['num_train']), ('val', 'validation', SMALL['num_val'])):
        imgs = sorted(os.listdir(osp.join(root, 'images', folder)))
        anns = sorted(os.listdir(osp.join(root, 'annotations', folder)))
        assert len(imgs) == num and all(n.endswith('.jpg') for n in imgs)
        assert [osp.splitext(n)[0] for n in imgs] == [osp.splitext(n)[0] for n in anns]
        assert all(n.endswith('.png') for n in anns)
        seen = set()
        for i, a in zip(imgs, anns):
            img = cv2.imread(osp.join(root, 'images', folder, i), cv2.IMREAD_COLOR)
            lab = cv2.imread(osp.join(root, 'annotations', folder, a), cv2.IMREAD_UNCHANGED)
            assert img.shape == (H, W, 3)
            assert lab.shape == (H, W) and lab.dtype == np.uint8
            vals = set(np.unique(lab).tolist())
            assert vals <= {0, 1, 2, 3} and vals - {0}, vals
            seen |= vals
        if split == 'train':
            assert seen == {0, 1, 2, 3}


def test_ensure_idempotent_and_force(tmp_path):
    root = tmp_path / 'demo'
    args = dict(num_train=3, num_val=2, image_size=96, seed=1)
    paths = ensure_demo_data(str(root), **args)
    assert paths == dict(coco=str(root / 'coco'), ade=str(root / 'ade'))
    before = {k: _stats(p) for k, p in paths.items()}
    digests = {k: _digests(p) for k, p in paths.items()}
    assert ensure_demo_data(str(root), **args) == paths
    assert {k: _stats(p) for k, p in paths.items()} == before, 'second call rewrote files'

    # --force through the CLI regenerates everything (new files) with the same content
    victim = root / 'coco' / 'train' / '000000.jpg'
    victim.write_bytes(b'corrupted')
    tool = _load_tool()
    tool.main(['--root', str(root), '--num-train', '3', '--num-val', '2', '--size', '96', '--seed', '1', '--force'])
    after = {k: _stats(p) for k, p in paths.items()}
    for k in paths:
        assert set(after[k]) == set(before[k])
        assert all(after[k][rel] != before[k][rel] for rel in before[k]), 'force kept old files'
        assert _digests(paths[k]) == digests[k]
    assert not [n for n in os.listdir(root) if '.partial-' in n or '.old-' in n]

    # the CLI without --force leaves complete data alone
    stats = {k: _stats(p) for k, p in paths.items()}
    tool.main(['--root', str(root), '--num-train', '3', '--num-val', '2', '--size', '96', '--seed', '1'])
    assert {k: _stats(p) for k, p in paths.items()} == stats


def test_incomplete_or_stale_is_regenerated(tmp_path, monkeypatch):
    root = tmp_path / 'demo'
    args = dict(num_train=3, num_val=2, image_size=96, seed=0)
    paths = ensure_demo_data(str(root), **args)
    good = {k: _digests(p) for k, p in paths.items()}

    # a missing file is noticed
    os.remove(osp.join(paths['ade'], 'annotations', 'validation', 'demo_val_000001.png'))
    coco_stats = _stats(paths['coco'])
    ensure_demo_data(str(root), **args)
    assert _digests(paths['ade']) == good['ade']
    assert _stats(paths['coco']) == coco_stats

    # other parameters -> rebuilt with them
    ensure_demo_data(str(root), **dict(args, num_train=4))
    assert len(os.listdir(osp.join(paths['coco'], 'train'))) == 4
    assert json.load(open(osp.join(paths['coco'], synthetic.MARKER_NAME)))['params']['num_train'] == 4

    # an interrupted generation leaves nothing that looks complete, and the next call finishes the job
    real_write = synthetic._write_image
    calls = []

    def failing_write(path, image):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_write(path, image)

    monkeypatch.setattr(synthetic, '_write_image', failing_write)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_data(str(tmp_path / 'fresh'), **args)
    assert not osp.exists(tmp_path / 'fresh' / 'coco')
    assert not [n for n in os.listdir(tmp_path / 'fresh') if n.startswith('.coco')]
    monkeypatch.setattr(synthetic, '_write_image', real_write)
    fresh = ensure_demo_data(str(tmp_path / 'fresh'), **args)
    assert {k: _digests(p) for k, p in fresh.items()} == good


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    foreign = tmp_path / 'coco'
    foreign.mkdir()
    (foreign / 'precious.txt').write_text('real data')
    with pytest.raises(FileExistsError):
        make_coco_instances(str(foreign), num_train=1, num_val=1, image_size=64)
    assert (foreign / 'precious.txt').read_text() == 'real data'


def test_mmdet_coco_dataset_loads(demo):
    from mmengine.registry import init_default_scope
    from mmdet.datasets import CocoDataset
    init_default_scope('mmdet')
    ds = CocoDataset(
        data_root=demo['coco'],
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=DEMO_CLASSES),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='PackDetInputs')
        ])
    assert len(ds) == SMALL['num_train']
    coco = COCO(osp.join(demo['coco'], 'annotations', 'instances_train.json'))
    for idx in (0, len(ds) - 1):
        sample = ds[idx]
        inputs, ds_sample = sample['inputs'], sample['data_samples']
        assert tuple(inputs.shape) == (3, H, W)
        gt = ds_sample.gt_instances
        img_id = coco.dataset['images'][idx]['id']
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
        assert len(gt) == len(anns) > 0
        boxes = gt.bboxes.tensor.numpy() if hasattr(gt.bboxes, 'tensor') else gt.bboxes.numpy()
        expect = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]]
                           for a in anns])
        np.testing.assert_allclose(boxes, expect)
        assert gt.labels.tolist() == [a['category_id'] - 1 for a in anns]
        masks = gt.masks.to_ndarray()
        assert masks.shape == (len(anns), H, W)
        for m, a in zip(masks, anns):
            assert np.array_equal(m, coco.annToMask(a))


def test_mmseg_dataset_loads(demo):
    from mmengine.registry import init_default_scope
    from mmseg.datasets import BaseSegDataset
    init_default_scope('mmseg')
    ds = BaseSegDataset(
        data_root=demo['ade'],
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=True,
        metainfo=dict(classes=DEMO_CLASSES),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')])
    assert len(ds) == SMALL['num_val']
    assert ds.metainfo['classes'] == DEMO_CLASSES
    for idx in range(len(ds)):
        info = ds.get_data_info(idx)
        assert osp.splitext(osp.basename(info['img_path']))[0] == osp.splitext(osp.basename(info['seg_map_path']))[0]
        sample = ds[idx]
        assert tuple(sample['inputs'].shape) == (3, H, W)
        seg = sample['data_samples'].gt_sem_seg.data.numpy()[0]
        raw = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED).astype(np.int64)
        expect = np.where(raw == 0, 255, raw - 1)
        assert np.array_equal(seg, expect)
        assert set(np.unique(seg).tolist()) <= {0, 1, 2, 255}
