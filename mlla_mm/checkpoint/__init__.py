from .official import backbone_state_dict, load_backbone_weights, load_pretrained_backbone
from .safe_load import OpaqueObject, safe_torch_load, unwrap_state_dict

__all__ = ['backbone_state_dict', 'load_backbone_weights', 'load_pretrained_backbone', 'OpaqueObject',
           'safe_torch_load', 'unwrap_state_dict']
