"""Embedded demo data (synthetic shapes) in COCO-instance and ADE20K-semantic layouts; see ``synthetic``."""
from .synthetic import (DEMO_CLASSES, GENERATOR_VERSION, MARKER_NAME, ensure_demo_data, is_complete,
                        make_ade_semantic, make_coco_instances, read_marker, render_scene)

__all__ = [
    'DEMO_CLASSES', 'GENERATOR_VERSION', 'MARKER_NAME', 'ensure_demo_data', 'is_complete', 'make_ade_semantic',
    'make_coco_instances', 'read_marker', 'render_scene'
]
