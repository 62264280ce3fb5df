"""Detection or segmentation on images from one command, with pictures of the results.

    python tools/demo.py IMAGE_OR_FOLDER CONFIG CHECKPOINT --out DIR [--device cpu] [--score-thr 0.3]

The task (mmdet or mmseg) comes from the config. Boxes, masks and labels (detection) or the class map
(segmentation) are drawn on each image and saved as DIR/<image name>.png, or DIR/<name>_<extension>.png for
images of one name (b.jpg and b.png: b_jpg.png and b_png.png). A picture never replaces an input image. An
unreadable image, a missing checkpoint, or a checkpoint trained for another config stops with a message that
names the file.
"""
import argparse
import sys

import repo_env  # tools/repo_env.py, found next to this script

repo_env.use_repo_venv()  # a Python without torch runs this script again with the .venv of the repository
sys.path.insert(0, repo_env.REPO)  # this checkout's mlla_mm, also uninstalled

from mmengine.config import DictAction  # noqa: E402

from mlla_mm.apis import load_config  # noqa: E402
from mlla_mm.apis.inference import list_images, predict_and_draw  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('images', help='an image file or a folder of images')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='folder for the pictures')
    parser.add_argument('--device', help='cpu or cuda:N (default: cuda:0 if available)')
    parser.add_argument('--score-thr', type=float, default=0.3, help='lowest score of a drawn detection')
    parser.add_argument('--opacity', type=float, default=0.5, help='opacity of drawn masks / class maps')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    images = list_images(args.images)
    written = predict_and_draw(load_config(args.config, args.cfg_options), args.checkpoint, images, args.out,
                               device=args.device, score_thr=args.score_thr, opacity=args.opacity)
    print(f'{len(written)} picture(s) written to {args.out}')


if __name__ == '__main__':
    main()
