"""Generate the embedded demo data (synthetic shapes) used to try training / evaluation without COCO or ADE20K.

    python tools/make_demo_data.py                       # data/demo/coco and data/demo/ade, 200 train / 50 val
    python tools/make_demo_data.py --num-train 20 --num-val 5 --size 128 --root /tmp/demo --force

Existing complete data with the same parameters is kept unless --force is given. The generator is
tools/demo_data.py.
"""
import argparse
import os.path as osp
import time

import repo_env  # tools/repo_env.py, found next to this script

repo_env.use_repo_venv()  # a Python without torch runs this script again with the .venv of the repository

import demo_data  # noqa: E402 (tools/demo_data.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--root', default='data/demo', help='output folder; gets coco/ and ade/ (default: %(default)s)')
    p.add_argument('--num-train', type=int, default=demo_data.DEFAULT_NUM_TRAIN, help='training images per dataset')
    p.add_argument('--num-val', type=int, default=demo_data.DEFAULT_NUM_VAL, help='validation images per dataset')
    p.add_argument('--size', type=int, nargs='+', default=[demo_data.DEFAULT_IMAGE_SIZE], metavar='N',
                   help='image side, or HEIGHT WIDTH (default: %(default)s)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--force', action='store_true', help='regenerate even if complete data is present')
    args = p.parse_args(argv)
    if len(args.size) not in (1, 2):
        p.error('--size takes one value (square) or two (HEIGHT WIDTH)')
    return args


def main(argv=None):
    args = parse_args(argv)
    size = args.size[0] if len(args.size) == 1 else tuple(args.size)
    before_ok = {
        kind: demo_data.is_complete(osp.join(osp.abspath(args.root), kind), kind, args.num_train, args.num_val, size,
                                    args.seed)
        for kind in ('coco', 'ade')
    }
    start = time.perf_counter()
    paths = demo_data.ensure_demo_data(args.root, num_train=args.num_train, num_val=args.num_val, image_size=size,
                                       seed=args.seed, force=args.force)
    elapsed = time.perf_counter() - start
    for kind, path in paths.items():
        marker = demo_data.read_marker(path)
        state = 'kept (already complete)' if before_ok[kind] and not args.force else 'generated'
        h, w = marker['params']['image_size']
        print(f'{kind}: {path}  [{state}; {w}x{h}, seed {marker["params"]["seed"]}]')
        for split, info in marker['summary'].items():
            if kind == 'coco':
                print(f'  {split}: {info["images"]} images, {info["instances"]} instances  '
                      f'img: {info["img_dir"]}  ann: {info["ann_file"]}')
            else:
                print(f'  {split}: {info["images"]} images  img: {info["img_dir"]}  ann: {info["ann_dir"]}')
    print(f'classes: {", ".join(demo_data.DEMO_CLASSES)}  ({elapsed:.1f} s)')
    return paths


if __name__ == '__main__':
    main()
