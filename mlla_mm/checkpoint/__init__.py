from .model_checkpoint import (CheckpointMismatchError, checkpoint_dataset_meta, fit_model_checkpoint,
                               load_model_checkpoint)
from .official import backbone_state_dict, load_backbone_weights, load_pretrained_backbone, official_rope_tables
from .safe_load import OpaqueObject, safe_torch_load, unwrap_state_dict

__all__ = ['CheckpointMismatchError', 'checkpoint_dataset_meta', 'fit_model_checkpoint', 'load_model_checkpoint',
           'backbone_state_dict', 'load_backbone_weights', 'load_pretrained_backbone', 'official_rope_tables',
           'OpaqueObject', 'safe_torch_load', 'unwrap_state_dict']
