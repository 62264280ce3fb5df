from .atomic_checkpoint_hook import AtomicCheckpointHook
from .checked_loading import ResumeError, check_resumable, install_checkpoint_rules
from .checkpoint_loader import install_safe_checkpoint_loader
from .config_format_cache import install_config_format_cache
from .first_iteration_clock_hook import FirstIterationClockHook, first_iteration_times, loop_start_times
from .optim_constructor import GroupedOptimWrapperConstructor, merge_param_groups
from .resume_checkpoint import find_resumable_checkpoint, install_resume_fallback

__all__ = ['AtomicCheckpointHook', 'ResumeError', 'check_resumable', 'install_checkpoint_rules',
           'install_safe_checkpoint_loader', 'install_config_format_cache', 'FirstIterationClockHook',
           'first_iteration_times', 'loop_start_times', 'GroupedOptimWrapperConstructor', 'merge_param_groups',
           'find_resumable_checkpoint', 'install_resume_fallback']
