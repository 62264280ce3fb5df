"""Where the pictures of predictions go: one PNG per image, named after it, never an input's path and never two
images on one file."""
import os.path as osp
from collections import Counter
from typing import List, Sequence


def picture_paths(images: Sequence[str], out_dir: str) -> List[str]:
    """The picture path of each image: ``out_dir/<name>.png``, or ``out_dir/<name>_<extension>.png`` when images
    of one name differ only in their extension (``b.jpg`` and ``b.png`` give ``b_jpg.png`` and ``b_png.png``).

    Raises ValueError naming the images when two of them would share a picture (same name in two folders), or
    when a picture would overwrite one of the images (``--out`` is the images' folder and holds such a name).
    """
    stems = [osp.splitext(osp.basename(path)) for path in images]
    stem_count = Counter(stem for stem, _ in stems)
    names = [f'{stem}.png' if stem_count[stem] == 1 else f'{stem}_{ext.lstrip(".")}.png' for stem, ext in stems]
    paths = [osp.join(out_dir, name) for name in names]

    inputs = {osp.realpath(image): image for image in images}
    overwritten = [(inputs[osp.realpath(path)], path) for path in paths if osp.realpath(path) in inputs]
    if overwritten:
        image, path = overwritten[0]
        raise ValueError(f'the picture of an image would overwrite the input image {image} ({path}); '
                         'choose another output folder')

    by_path = {}
    for image, path in zip(images, paths):
        by_path.setdefault(osp.realpath(path), []).append(image)
    shared = [(path, sources) for path, sources in by_path.items() if len(sources) > 1]
    if shared:
        path, sources = shared[0]
        raise ValueError(f'{len(sources)} images would be drawn on the same picture {path}: {", ".join(sources)}; '
                         'rename one of them, or draw them into different folders')
    return paths
