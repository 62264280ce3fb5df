from .checkpoint_loader import install_safe_checkpoint_loader
from .optim_constructor import GroupedOptimWrapperConstructor, merge_param_groups

__all__ = ['install_safe_checkpoint_loader', 'GroupedOptimWrapperConstructor', 'merge_param_groups']
