"""Registration into OpenMMLab's model registries.

mmengine's root ``MODELS`` is the parent of mmdet's, mmseg's and mmpretrain's, so a module registered there builds
from all of them. It is also registered into mmdet's and mmseg's own registries where those packages are installed
(neither is required), so that it shows in their listings and resolves under their scopes directly.
"""
import importlib
from typing import List

from mmengine.registry import MODELS as MMENGINE_MODELS

DOWNSTREAM_REGISTRIES = ('mmdet.registry', 'mmseg.registry')


def _model_registries() -> List:
    registries = [MMENGINE_MODELS]
    for module_name in DOWNSTREAM_REGISTRIES:
        try:
            registries.append(importlib.import_module(module_name).MODELS)
        except ImportError:
            continue
    return registries


def register_model():
    """Class decorator: register a model class in every available OpenMMLab ``MODELS`` registry."""

    def decorator(cls):
        for registry in _model_registries():
            registry.register_module(module=cls, force=True)
        return cls

    return decorator
