from .backbones import MLLA

__all__ = ['MLLA']
