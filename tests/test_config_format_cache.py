"""mmengine's config text formatted once per content (mlla_mm.engine.config_format_cache)."""
import mmengine.config.config as mmengine_config
import pytest
from mmengine.config import Config

from mlla_mm.engine import config_format_cache
from mlla_mm.engine.config_format_cache import cached_format, install_config_format_cache


class CountingFormatter:
    """yapf's FormatCode, counting its calls."""

    def __init__(self, format_code):
        self.format_code, self.calls = format_code, []

    def __call__(self, code, **options):
        self.calls.append(code)
        return self.format_code(code, **options)


@pytest.fixture
def counting(monkeypatch):
    """mmengine's FormatCode replaced by a counting one (restored after the test), then the cache installed."""
    counter = CountingFormatter(mmengine_config.FormatCode)
    monkeypatch.setattr(mmengine_config, 'FormatCode', counter)
    install_config_format_cache()
    return counter


def test_pretty_text_is_formatted_once_and_unchanged(counting):
    cfg = Config(dict(model=dict(type='MaskRCNN', backbone=dict(type='MLLA', depths=[2, 4, 8, 4])), lr=1e-4))
    # what mmengine itself makes of the config, formatting included
    expected, _ = counting.format_code(_unformatted(cfg), **_style_of_pretty_text())
    assert [cfg.pretty_text for _ in range(3)] == [expected] * 3
    assert len(counting.calls) == 1
    cfg.lr = 2e-4  # a change: formatted again
    assert 'lr = 0.0002' in cfg.pretty_text and len(counting.calls) == 2


def test_install_is_idempotent(counting):
    wrapper = mmengine_config.FormatCode
    install_config_format_cache()
    assert mmengine_config.FormatCode is wrapper and wrapper.wrapped is counting


def test_results_are_kept_per_text_and_options_and_bounded(monkeypatch):
    calls = []

    def format_code(code, **options):
        calls.append((code, options))
        return code.upper(), True

    monkeypatch.setattr(config_format_cache, 'CACHE_SIZE', 2)
    cached = cached_format(format_code)
    assert cached('a', style_config=dict(x=1)) == ('A', True)
    assert cached('a', style_config=dict(x=1)) == ('A', True)
    assert cached('a', style_config=dict(x=2)) == ('A', True)  # other options: formatted again
    assert len(calls) == 2
    cached('b')  # a third entry drops the oldest ('a' with x=1)
    cached('a', style_config=dict(x=1))
    assert len(calls) == 4


def _unformatted(cfg: Config) -> str:
    unformatted = Config(cfg.to_dict(), format_python_code=False)
    return unformatted.pretty_text


def _style_of_pretty_text() -> dict:
    """The options that ``Config.pretty_text`` passes to yapf (read from a call of it)."""
    seen = {}

    def spy(code, **options):
        seen.update(options)
        return code, False

    original = mmengine_config.FormatCode
    mmengine_config.FormatCode = spy
    try:
        Config(dict(a=1)).pretty_text
    finally:
        mmengine_config.FormatCode = original
    return seen
