from .checkpoint_loader import install_safe_checkpoint_loader

__all__ = ['install_safe_checkpoint_loader']
