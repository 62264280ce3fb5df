"""Export of MLLA segmentors and detector parts to ONNX, and its check against PyTorch (``tools/deployment/``)."""
from .export_model import PARTS, Features, SegmentorLogits, build_export_module, prepare_export_config
from .onnx_export import OPSET, SIDE_MULTIPLE, compare_with_onnxruntime, export_onnx, relative_difference

__all__ = ['OPSET', 'PARTS', 'SIDE_MULTIPLE', 'Features', 'SegmentorLogits', 'build_export_module',
           'compare_with_onnxruntime', 'export_onnx', 'prepare_export_config', 'relative_difference']
