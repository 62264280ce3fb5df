"""benchmarks/make_tables.py: the speed tables are generated from the results files, and --check finds stale ones."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = 'date,commit,card,torch,task,model,input,precision,measure,value,unit\n'
ROWS = ('2026-01-02,abc1234,NVIDIA X1,9.9.0,backbone,MLLA-T fast,2x3x64x64,bf16,train_step_ms,30.00,ms\n'
        '2026-01-02,abc1234,NVIDIA X1,9.9.0,backbone,ConvNeXt-T,2x3x64x64,bf16,train_step_ms,40.00,ms\n'
        '2026-01-02,abc1234,NVIDIA X1,9.9.0,backbone,MLLA-T fast,2x3x64x64,bf16,peak_mem_mib,4076,MiB\n'
        '2026-01-03,def5678,NVIDIA X1,9.9.0,upernet,MLLA-T fast (stages),8x3x32x32,fp16,throughput_img_s,7080,img/s\n'
        '2026-01-03,def5678,NVIDIA X1,9.9.0,upernet,Swin-T,8x3x32x32,fp16,throughput_img_s,3540,img/s\n')


def load_make_tables():
    spec = importlib.util.spec_from_file_location('make_tables', os.path.join(ROOT, 'benchmarks', 'make_tables.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tree(tmp_path):
    results = tmp_path / 'results'
    results.mkdir()
    (results / 'x1_torch-9.9.0.csv').write_text(HEADER + ROWS)
    readme = tmp_path / 'README.md'
    readme.write_text('# title\n\n<!-- speed-table:start -->\nold\n<!-- speed-table:end -->\n\nafter\n')
    speed = tmp_path / 'speed.md'
    speed.write_text('# Speed\n<!-- speed-tables:start -->\n<!-- speed-tables:end -->\n'
                     '<!-- wall-time-tables:start -->\n<!-- wall-time-tables:end -->\n'
                     '<!-- new-size-tables:start -->\n<!-- new-size-tables:end -->\n')
    args = ['--results', str(results), '--readme', str(readme), '--speed-doc', str(speed)]
    return results, readme, speed, args


def test_tables_come_from_the_results_file_and_check_sees_staleness(tree):
    make_tables = load_make_tables()
    results, readme, speed, args = tree
    assert make_tables.main(args + ['--check']) == 1  # 'old' is not the generated table
    assert make_tables.main(args) == 0
    text = readme.read_text()
    assert text.startswith('# title\n\n<!-- speed-table:start -->\n| what |') and text.endswith('\nafter\n')
    assert 'old' not in text
    assert ('| backbone train step, 2x3x64x64 bf16 | 30.00 ms | ConvNeXt-T: 40.00 ms | 0.75x | X1, torch 9.9.0 | '
            '2026-01-02, abc1234 |') in text
    assert ('| UperNet inference throughput, 8x3x32x32 fp16 | 7,080 img/s (stages) | Swin-T: 3,540 img/s | 2.00x |'
            in text)
    assert 'peak memory' not in text  # the README shows the headline measures only
    doc = speed.read_text()
    assert '4,076 MiB' in doc and 'From `benchmarks/results/x1_torch-9.9.0.csv`.' in doc
    assert max(len(line) for line in doc.splitlines() if not line.startswith('|')) <= 120
    assert ('# UperNet 8x3x32x32 fp16, inference\npython tools/analysis/benchmark.py --level model --config '
            'configs/segmentation/upernet_mlla_t.py --shape 32 32 --batch 8 --precision fp16 --peers swin_t mlla '
            '--attn-impl fast --no-train\n') in doc.replace(' \\\n    ', ' ')
    assert make_tables.main(args + ['--check']) == 0
    before = (readme.read_text(), speed.read_text())
    assert make_tables.main(args) == 0
    assert (readme.read_text(), speed.read_text()) == before  # deterministic

    (results / 'x1_torch-9.9.0.csv').write_text(HEADER + ROWS.replace('30.00', '31.00'))
    assert make_tables.main(args + ['--check']) == 1
    assert (readme.read_text(), speed.read_text()) == before  # --check writes nothing


def test_whole_job_rows_make_their_own_table(tree):
    """wall_<job>_<cache>_s lines (tools/analysis/wall_time.py) go into the whole-jobs table, one line per job and
    cache state with the three models side by side, and stay out of the step tables; without them the table says
    that none were measured."""
    make_tables = load_make_tables()
    results, readme, speed, args = tree
    assert make_tables.main(args) == 0
    assert 'No measurements yet' in speed.read_text()
    wall = ('2026-01-04,fed4321,NVIDIA X1,9.9.0,mask_rcnn,MLLA-T auto,2x3x800x1333,fp16,wall_train300_cold_s,91,s\n'
            '2026-01-04,fed4321,NVIDIA X1,9.9.0,mask_rcnn,MLLA-T fast,2x3x800x1333,fp16,wall_train300_cold_s,300.5,s\n'
            '2026-01-04,fed4321,NVIDIA X1,9.9.0,mask_rcnn,MLLA-T plain,2x3x800x1333,fp16,wall_train300_cold_s,90,s\n'
            '2026-01-04,fed4321,NVIDIA X1,9.9.0,mask_rcnn,Swin-T,2x3x800x1333,fp16,wall_train300_cold_s,60.1,s\n'
            '2026-01-04,fed4321,NVIDIA X1,9.9.0,mask_rcnn,Swin-T,1x3x800x1333,fp32,wall_first_infer_warm_s,8,s\n'
            '2026-01-04,fed4321,NVIDIA X1,9.9.0,upernet,Swin-T,8x3x512x512,fp16,wall_seg_first_step_cold_s,12,s\n')
    (results / 'x1_torch-9.9.0.csv').write_text(HEADER + ROWS + wall)
    assert make_tables.main(args) == 0
    doc = speed.read_text()
    tables = doc.split('<!-- wall-time-tables:start -->')
    assert 'wall_' not in tables[0] and 'train300' not in tables[0]
    assert 'No measurements yet' not in tables[1].split('<!-- wall-time-tables:end -->')[0]
    lines = tables[1].splitlines()
    assert '| job | cache | MLLA-T auto | MLLA-T fast | MLLA-T plain | Swin-T | MLLA-T auto / Swin-T | date, commit |' \
        in lines, 'the configs as they are (auto) against Swin-T'
    assert 'MLLA-T auto graphs' not in tables[1], 'no column for a model without whole-job rows'
    train = lines.index('| Mask R-CNN, 300 train iterations | cold | 91.00 s | 300.5 s | 90.00 s | 60.10 s | 1.51x | '
                        '2026-01-04, fed4321 |')
    seg_first = lines.index('| UperNet, launch to the end of the first train step | cold | - | - | - | 12.00 s | - | '
                            '2026-01-04, fed4321 |')
    first = lines.index("| tools/test.py, launch to the first image's result | warm | - | - | - | 8.00 s | - | "
                        '2026-01-04, fed4321 |')
    assert train < seg_first < first, 'jobs in the order of WALL_JOBS'
    assert not any(line.startswith('| Mask R-CNN, launch to') for line in lines), 'UperNet keeps its own first step'
    assert 'train300' not in readme.read_text()
    (results / 'x1_torch-9.9.0.csv').write_text(HEADER + wall.replace('wall_train300_cold_s', 'wall_train50_cold_s'))
    assert make_tables.main(args) == 0
    assert '| Mask R-CNN, 50 train iterations | cold | 91.00 s | 300.5 s |' in speed.read_text()
    for bad in ('wall_train_cold_s', 'wall_first_step2_cold_s', 'wall_train300_hot_s'):
        (results / 'x1_torch-9.9.0.csv').write_text(HEADER + wall.replace('wall_train300_cold_s', bad))
        assert make_tables.main(args) == 2, bad


def test_bad_results_and_missing_markers_are_named(tree, capsys):
    make_tables = load_make_tables()
    results, readme, speed, args = tree
    (results / 'x1_torch-9.9.0.csv').write_text(HEADER + ROWS.replace('train_step_ms,30.00', 'train_ms,30.00'))
    assert make_tables.main(args) == 2
    assert "x1_torch-9.9.0.csv:2: measure 'train_ms'" in capsys.readouterr().err
    (results / 'x1_torch-9.9.0.csv').write_text('date,value\n' + ROWS)
    assert make_tables.main(args) == 2
    assert 'x1_torch-9.9.0.csv: the header must be' in capsys.readouterr().err
    (results / 'x1_torch-9.9.0.csv').write_text(HEADER + ROWS)
    readme.write_text('no markers\n')
    assert make_tables.main(args) == 2
    assert f'{readme}: needs exactly one <!-- speed-table:start -->' in capsys.readouterr().err
    assert readme.read_text() == 'no markers\n'


def test_repository_tables_are_up_to_date():
    assert load_make_tables().main(['--check']) == 0, 'run python benchmarks/make_tables.py'


def test_new_size_rows_make_their_own_table(tree):
    """first_size_step_s, new_size_step_s and seen_size_step_ms (tools/analysis/new_sizes.py) go into the new-size
    table, one line per model with the three side by side, and stay out of the step tables."""
    make_tables = load_make_tables()
    results, readme, speed, args = tree
    sizes = ''.join(f'2026-01-05,aaa1111,NVIDIA X1,9.9.0,backbone,{model},2x3 at 6 sizes 512x864-800x1344,fp16,'
                    f'{measure},{value}\n'
                    for model, values in (('MLLA-T plain', ('6.1,s', '4.2,s', '110,ms')),
                                          ('ConvNeXt-T', ('3.0,s', '2.5,s', '25.5,ms')))
                    for measure, value in zip(('first_size_step_s', 'new_size_step_s', 'seen_size_step_ms'), values))
    (results / 'x1_torch-9.9.0.csv').write_text(HEADER + ROWS + sizes)
    assert make_tables.main(args) == 0
    doc = speed.read_text()
    steps, rest = doc.split('<!-- new-size-tables:start -->')
    assert 'new size' not in steps and 'size_step' not in steps and 'size_step' not in readme.read_text()
    lines = rest.splitlines()
    assert ('| task | input | precision | model | first step | step at a new size | step at a seen size | '
            'date, commit |') in lines
    assert lines.index('| backbone | 2x3 at 6 sizes 512x864-800x1344 | fp16 | MLLA-T plain | 6.10 s | 4.20 s | '
                       '110.0 ms | 2026-01-05, aaa1111 |') < lines.index(
        '| backbone | 2x3 at 6 sizes 512x864-800x1344 | fp16 | ConvNeXt-T | 3.00 s | 2.50 s | 25.50 ms | '
        '2026-01-05, aaa1111 |')
    (results / 'x1_torch-9.9.0.csv').write_text(HEADER + ROWS)
    assert make_tables.main(args) == 0
    assert 'No measurements yet: run the command above' in speed.read_text().split('new-size-tables:start')[1]

