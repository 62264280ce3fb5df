"""Write the speed tables of README.md and docs/speed.md from the results files in benchmarks/results/.

    python benchmarks/make_tables.py           # rewrite the tables between their marker comments
    python benchmarks/make_tables.py --check   # exit 1 if a table is not what the results files give

Each results file is a CSV with the columns of ``COLUMNS``, one file per card and torch version. The tables go
between ``<!-- speed-table:start -->`` and ``<!-- speed-table:end -->`` in README.md (the headline measures of
every file) and between ``<!-- speed-tables:start -->`` and ``<!-- speed-tables:end -->`` in docs/speed.md (every
row, one table per file, and the command that measures each group); docs/speed.md's ``wall-time-tables`` and
``new-size-tables`` markers take the whole jobs and the new-size steps. Standard library only; the output depends
on the files' contents alone.
"""
import argparse
import csv
import glob
import os
import re
import sys
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ['date', 'commit', 'card', 'torch', 'task', 'model', 'input', 'precision', 'measure', 'value', 'unit']
TASKS = ['backbone', 'mask_rcnn', 'upernet']
TASK_NAMES = {'backbone': 'backbone', 'mask_rcnn': 'Mask R-CNN', 'upernet': 'UperNet'}
MEASURES = ['train_step_ms', 'train_step_fused_adamw_ms', 'infer_ms', 'throughput_img_s', 'peak_mem_mib',
            'first_step_cold_s', 'first_step_warm_s', 'first_infer_cold_s', 'first_infer_warm_s']
MEASURE_NAMES = {
    'train_step_ms': 'train step',
    'train_step_fused_adamw_ms': 'train step, fused AdamW',
    'infer_ms': 'inference',
    'throughput_img_s': 'inference throughput',
    'peak_mem_mib': 'train peak memory',
    'first_step_cold_s': 'first train step (compile, cold cache)',
    'first_step_warm_s': 'first train step (compile, warm cache)',
    'first_infer_cold_s': 'first inference (compile, cold cache)',
    'first_infer_warm_s': 'first inference (compile, warm cache)',
}
# The measures the README's single table shows; docs/speed.md shows all of them.
HEADLINE_MEASURES = ['train_step_ms', 'train_step_fused_adamw_ms', 'infer_ms', 'throughput_img_s']
TRAIN_MEASURES = {'train_step_ms', 'train_step_fused_adamw_ms', 'peak_mem_mib', 'first_step_cold_s',
                  'first_step_warm_s'}
MODEL_CONFIGS = {'mask_rcnn': 'configs/detection/mask_rcnn_mlla_t.py',
                 'upernet': 'configs/segmentation/upernet_mlla_t.py'}
MODEL_PEERS = {'backbone': 'convnext_t', 'mask_rcnn': 'swin_t', 'upernet': 'swin_t'}
README_MARKER = 'speed-table'
SPEED_DOC_MARKER = 'speed-tables'
WALL_TIME_MARKER = 'wall-time-tables'
NEW_SIZE_MARKER = 'new-size-tables'
# What a table of whole jobs or new sizes says while no results file has its rows
NOT_MEASURED = 'No measurements yet: run the command above and put its lines into `benchmarks/results/`.'
# What a new input size costs a train step (tools/analysis/new_sizes.py): its measures, in the order of its table
NEW_SIZE_MEASURES = OrderedDict([('first_size_step_s', 'first step'), ('new_size_step_s', 'step at a new size'),
                                 ('seen_size_step_ms', 'step at a seen size')])
# Whole jobs timed by tools/analysis/wall_time.py, measure wall_<job>_<cache>_s, in the order of its table; N is
# the job's count of iterations or images (300 and 500 by default)
WALL_JOBS = OrderedDict([
    ('train_start', 'Mask R-CNN, launch to the start of training'),
    ('first_step', 'Mask R-CNN, launch to the end of the first train step'),
    ('train', 'Mask R-CNN, {n} train iterations'),
    ('seg_train_start', 'UperNet, launch to the start of training'),
    ('seg_first_step', 'UperNet, launch to the end of the first train step'),
    ('seg_train', 'UperNet, {n} train iterations'),
    ('test_start', 'tools/test.py, launch to the start of testing'),
    ('first_infer', 'tools/test.py, launch to the first image\'s result'),
    ('test', 'tools/test.py, {n} images'),
    ('demo1', 'tools/demo.py, one image'),
])
WALL_CACHES = ('cold', 'warm')
WALL_MODELS = ('MLLA-T auto', 'MLLA-T auto graphs', 'MLLA-T fast', 'MLLA-T plain', 'Swin-T')
WALL_DEFAULT = 'MLLA-T auto'  # the configs as they are: its ratio to Swin-T is the table's last column
WALL_MEASURE = re.compile(rf'wall_({"|".join(WALL_JOBS)})(\d*)_({"|".join(WALL_CACHES)})_s')


def wall_measure(measure):
    """``(job, count, cache)`` of a whole-job measure (``wall_train300_cold_s``: ``('train', 300, 'cold')``), or
    None for any other measure."""
    match = WALL_MEASURE.fullmatch(measure)
    if match is None:
        return None
    job, count, cache = match.groups()
    counted = WALL_JOBS[job].count('{n}') > 0
    if counted != bool(count):
        return None
    return job, int(count) if count else None, cache


def wall_job_label(job, count):
    return WALL_JOBS[job].format(n=f'{count:,}' if count else '')


class ResultsError(ValueError):
    """A results file or a target file that cannot be used, with the file named."""


def read_results(path):
    """The rows of one results file, as dicts, after checking its header and values."""
    with open(path, newline='') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != COLUMNS:
            raise ResultsError(f'{path}: the header must be {",".join(COLUMNS)}, got {header}')
        rows = []
        for line_no, values in enumerate(reader, start=2):
            if not values:
                continue
            if len(values) != len(COLUMNS):
                raise ResultsError(f'{path}:{line_no}: {len(values)} values, expected {len(COLUMNS)}')
            row = dict(zip(COLUMNS, values))
            if row['task'] not in TASKS:
                raise ResultsError(f'{path}:{line_no}: task {row["task"]!r} is not one of {TASKS}')
            if (row['measure'] not in MEASURES and row['measure'] not in NEW_SIZE_MEASURES
                    and wall_measure(row['measure']) is None):
                raise ResultsError(f'{path}:{line_no}: measure {row["measure"]!r} is not one of {MEASURES}, '
                                   f'{list(NEW_SIZE_MEASURES)} (tools/analysis/new_sizes.py) '
                                   f'or wall_<job>_<cold|warm>_s (tools/analysis/wall_time.py)')
            try:
                float(row['value'])
            except ValueError:
                raise ResultsError(f'{path}:{line_no}: value {row["value"]!r} is not a number') from None
            rows.append(row)
    if not rows:
        raise ResultsError(f'{path}: no rows')
    return rows


def read_all_results(results_dir):
    """(file name, rows) for every CSV in ``results_dir``, sorted by name."""
    paths = sorted(glob.glob(os.path.join(results_dir, '*.csv')))
    if not paths:
        raise ResultsError(f'{results_dir}: no results files (*.csv)')
    return [(os.path.basename(p), read_results(p)) for p in paths]


def format_value(value, unit):
    """A measured value as a table shows it: whole numbers from 1,000 up with separators (img/s, MiB), others with
    two decimals below 100 and one above (the benchmark writes six significant digits)."""
    number = float(value)
    if abs(number) >= 1000:
        text = f'{round(number):,}'
    elif abs(number) >= 100:
        text = f'{number:.1f}'
    else:
        text = f'{number:.2f}'
    return f'{text} {unit}'


def short_card(card):
    return card.replace('NVIDIA ', '')


def file_heading(name, rows):
    """The lines that open a results file's table: its cards and torch versions, and the file it comes from."""
    cards = sorted({r['card'] for r in rows})
    torches = sorted({r['torch'] for r in rows})
    return [f'### {", ".join(cards)}, torch {", ".join(torches)}', '', f'From `benchmarks/results/{name}`.', '']


def group_rows(rows):
    """Step rows (not whole jobs, not new sizes) grouped by what one table line shows, in the order the groups first
    appear."""
    groups = OrderedDict()
    for row in rows:
        if wall_measure(row['measure']) or row['measure'] in NEW_SIZE_MEASURES:
            continue
        key = tuple(row[c] for c in ('card', 'torch', 'task', 'input', 'precision', 'measure', 'date', 'commit'))
        groups.setdefault(key, []).append(row)
    return groups


def split_models(group):
    """The group's MLLA-T fast row, MLLA-T plain row and peer row (each None if absent)."""
    fast = plain = peer = None
    for row in group:
        if row['model'].startswith('MLLA-T fast'):
            fast = fast or row
        elif row['model'].startswith('MLLA-T plain'):
            plain = plain or row
        else:
            peer = peer or row
    return fast, plain, peer


def cell(row, with_variant=False):
    if row is None:
        return '-'
    text = format_value(row['value'], row['unit'])
    if with_variant:
        variant = row['model'][len('MLLA-T fast'):].strip()
        if variant:
            text += f' {variant}'
    return text


def ratio(fast, peer):
    if fast is None or peer is None or float(peer['value']) == 0:
        return '-'
    return f'{float(fast["value"]) / float(peer["value"]):.2f}x'


def peer_cell(peer):
    return '-' if peer is None else f'{peer["model"]}: {cell(peer)}'


def sort_key(key):
    card, torch, task, inp, precision, measure, date, commit = key
    return TASKS.index(task), MEASURES.index(measure), card, inp, precision


def command_for(task, inp, precision, measure):
    """The tools/analysis/benchmark.py command that measures a group of rows."""
    batch, _, height, width = inp.split('x')
    if task == 'backbone':
        head = 'python tools/analysis/benchmark.py --level backbone --arch tiny'
    else:
        head = f'python tools/analysis/benchmark.py --level model --config {MODEL_CONFIGS[task]}'
    peers = f'--peers {MODEL_PEERS[task]} mlla'
    if measure in TRAIN_MEASURES:
        impl = '--attn-impl plain fast' if task == 'backbone' else '--attn-impl fast'
        adamw = '--adamw none fused' if task == 'backbone' else '--adamw config'
        rest = f'{impl} {adamw} --no-infer'
    else:
        rest = '--attn-impl fast --no-train'
    if measure.startswith('first_'):  # first_step_cold_s -> cold
        rest += f' --compile-cache {measure.split("_")[2]}'
    return f'{head} --shape {height} {width} --batch {batch} --precision {precision} {peers} {rest}'


def wrap_command(command, width=116):
    """``command`` as shell lines of at most ``width`` characters, broken before options, continued with ``\\``."""
    chunks = []
    for word in command.split(' '):
        if word.startswith('--') or not chunks:
            chunks.append(word)
        else:
            chunks[-1] += ' ' + word
    lines = [chunks[0]]
    for chunk in chunks[1:]:
        if len(lines[-1]) + 1 + len(chunk) + 2 > width:
            lines.append('    ' + chunk)
        else:
            lines[-1] += ' ' + chunk
    return [line + ' \\' for line in lines[:-1]] + lines[-1:]


def group_label(task, inp, precision, measure):
    kind = 'train' if measure in TRAIN_MEASURES else 'inference'
    return f'{TASK_NAMES[task]} {inp} {precision}, {kind}'


def readme_table(results):
    """One table: the headline measures of every results file."""
    lines = ['| what | MLLA-T fast | peer | MLLA-T / peer | card, torch | date, commit |',
             '| --- | --- | --- | --- | --- | --- |']
    groups = OrderedDict()
    for _, rows in results:
        groups.update(group_rows(rows))
    for key in sorted(groups, key=sort_key):
        card, torch, task, inp, precision, measure, date, commit = key
        if measure not in HEADLINE_MEASURES:
            continue
        fast, _, peer = split_models(groups[key])
        what = f'{TASK_NAMES[task]} {MEASURE_NAMES[measure]}, {inp} {precision}'
        lines.append(f'| {what} | {cell(fast, True)} | {peer_cell(peer)} | {ratio(fast, peer)} | '
                     f'{short_card(card)}, torch {torch} | {date}, {commit} |')
    return '\n'.join(lines)


def speed_doc_tables(results):
    """Per results file: a table of every row, then the command for each group of rows."""
    parts = []
    for name, rows in results:
        groups = group_rows(rows)
        if not groups:
            continue
        parts += file_heading(name, rows)
        parts.append('| task | input | precision | measure | MLLA-T fast | MLLA-T plain | peer | MLLA-T fast / peer '
                     '| date | commit |')
        parts.append('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
        commands = OrderedDict()
        for key in sorted(groups, key=sort_key):
            card, torch, task, inp, precision, measure, date, commit = key
            fast, plain, peer = split_models(groups[key])
            parts.append(f'| {TASK_NAMES[task]} | {inp} | {precision} | {MEASURE_NAMES[measure]} | {cell(fast, True)} '
                         f'| {cell(plain)} | {peer_cell(peer)} | {ratio(fast, peer)} | {date} | {commit} |')
            commands.setdefault(group_label(task, inp, precision, measure),
                                command_for(task, inp, precision, measure))
        parts.append('')
        parts.append('Commands:')
        parts.append('')
        parts.append('```bash')
        for label, command in commands.items():
            parts.append(f'# {label}')
            parts.extend(wrap_command(command))
        parts.append('```')
        parts.append('')
    return '\n'.join(parts).rstrip('\n')


def wall_time_tables(results):
    """Per results file with whole-job rows: one line per job and cache state, side by side the models of
    ``WALL_MODELS`` that the file has whole-job rows of."""
    parts = []
    for name, rows in results:
        cells = OrderedDict()
        for row in rows:
            job = wall_measure(row['measure'])
            if job:
                cells.setdefault(job, {})[row['model']] = row
        if not cells:
            continue
        models = [model for model in WALL_MODELS if any(model in by_model for by_model in cells.values())]
        parts += file_heading(name, rows) + [
                  '| job | cache | ' + ' | '.join(models) + f' | {WALL_DEFAULT} / Swin-T | date, commit |',
                  '| --- | --- |' + ' --- |' * (len(models) + 2)]
        jobs = list(WALL_JOBS)
        for job, count, cache in sorted(cells, key=lambda k: (jobs.index(k[0]), k[1] or 0, WALL_CACHES.index(k[2]))):
            by_model = cells[(job, count, cache)]
            dated = sorted({f'{r["date"]}, {r["commit"]}' for r in by_model.values()})
            parts.append(f'| {wall_job_label(job, count)} | {cache} | '
                         + ' | '.join(cell(by_model.get(model)) for model in models)
                         + f' | {ratio(by_model.get(WALL_DEFAULT), by_model.get("Swin-T"))} | {"; ".join(dated)} |')
        parts.append('')
    return '\n'.join(parts).rstrip('\n') if parts else NOT_MEASURED


def new_size_tables(results):
    """Per results file with new-size rows: one line per model, input and precision, the three measures side by
    side."""
    parts = []
    for name, rows in results:
        lines = OrderedDict()
        for row in rows:
            if row['measure'] in NEW_SIZE_MEASURES:
                key = tuple(row[c] for c in ('task', 'input', 'precision', 'model', 'date', 'commit'))
                lines.setdefault(key, {})[row['measure']] = row
        if not lines:
            continue
        parts += file_heading(name, rows) + [
                  '| task | input | precision | model | ' + ' | '.join(NEW_SIZE_MEASURES.values())
                  + ' | date, commit |',
                  '| --- | --- | --- | --- |' + ' --- |' * (len(NEW_SIZE_MEASURES) + 1)]
        for (task, inp, precision, model, date, commit), by_measure in lines.items():
            parts.append(f'| {TASK_NAMES[task]} | {inp} | {precision} | {model} | '
                         + ' | '.join(cell(by_measure.get(measure)) for measure in NEW_SIZE_MEASURES)
                         + f' | {date}, {commit} |')
        parts.append('')
    return '\n'.join(parts).rstrip('\n') if parts else NOT_MEASURED


def replace_between_markers(text, marker, content, path):
    start, end = f'<!-- {marker}:start -->', f'<!-- {marker}:end -->'
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ResultsError(f'{path}: needs exactly one {start} followed by one {end}')
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f'{head}{start}\n{content}\n{end}{tail}'


def updated_files(results_dir, readme, speed_doc):
    """{path: (old text, new text)} for the two files that hold generated tables."""
    results = read_all_results(results_dir)
    out = {}
    for path, markers in ((readme, [(README_MARKER, readme_table(results))]),
                          (speed_doc, [(SPEED_DOC_MARKER, speed_doc_tables(results)),
                                       (WALL_TIME_MARKER, wall_time_tables(results)),
                                       (NEW_SIZE_MARKER, new_size_tables(results))])):
        if not os.path.isfile(path):
            raise ResultsError(f'{path}: not found')
        with open(path) as f:
            old = f.read()
        new = old
        for marker, content in markers:
            new = replace_between_markers(new, marker, content, path)
        out[path] = (old, new)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description='Write the speed tables from benchmarks/results/*.csv')
    parser.add_argument('--check', action='store_true', help='change nothing; exit 1 if a table is out of date')
    parser.add_argument('--results', default=os.path.join(ROOT, 'benchmarks', 'results'), help='results folder')
    parser.add_argument('--readme', default=os.path.join(ROOT, 'README.md'))
    parser.add_argument('--speed-doc', default=os.path.join(ROOT, 'docs', 'speed.md'))
    args = parser.parse_args(argv)
    try:
        files = updated_files(args.results, args.readme, args.speed_doc)
    except ResultsError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    stale = [path for path, (old, new) in files.items() if old != new]
    if args.check:
        for path in stale:
            print(f'out of date: {path} (run python benchmarks/make_tables.py)', file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        with open(path, 'w') as f:
            f.write(files[path][1])
        print(f'updated {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
