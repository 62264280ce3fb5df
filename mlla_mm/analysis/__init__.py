"""Model complexity and speed measurements of MLLA and its peers; the command lines are in tools/analysis/."""
from .complexity import backbone_flops, count_complexity
from .results import CSV_COLUMNS, append_csv, csv_rows, machine
from .rows import Row, build_backbone, config_variant, parse_fast_cfg, row_name, row_variants
from .timing import measure, time_call, train_step

__all__ = ['count_complexity', 'backbone_flops', 'CSV_COLUMNS', 'append_csv', 'csv_rows', 'machine', 'Row',
           'build_backbone', 'config_variant', 'parse_fast_cfg', 'row_name', 'row_variants', 'measure', 'time_call',
           'train_step']
