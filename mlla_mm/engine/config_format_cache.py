"""mmengine's config text formatted by yapf once per content, not at every use.

Why: before its first iteration a Runner turns its config into Python text several times (the copy in the log,
the config file it dumps, the visualizer's copy), and each time ``Config.pretty_text`` has yapf reformat the whole
text, which takes most of a second for a Mask R-CNN config: seconds of every job's start-up. The formatted text
depends only on the text and the style, so the first result is kept and returned again.
"""
from typing import Callable, Dict, Tuple

import mmengine.config.config as mmengine_config

CACHE_SIZE = 32  # formatted texts kept; a job formats one or two configs


def cached_format(format_code: Callable) -> Callable:
    """``format_code`` (yapf's ``FormatCode``: source text and options -> ``(text, changed)``) with its results
    kept per source text and options."""
    results: Dict[Tuple[str, str], tuple] = {}

    def format_once(code: str, **options):
        key = (code, repr(sorted(options.items())))
        if key not in results:
            if len(results) >= CACHE_SIZE:
                results.pop(next(iter(results)))
            results[key] = format_code(code, **options)
        return results[key]

    format_once.wrapped = format_code
    return format_once


def install_config_format_cache() -> None:
    """Make mmengine's ``Config.pretty_text`` format each distinct text once per process. Idempotent."""
    if not hasattr(mmengine_config.FormatCode, 'wrapped'):
        mmengine_config.FormatCode = cached_format(mmengine_config.FormatCode)
