"""Command-line plumbing shared by ``tools/`` and ``demo/``: reading configs with overrides,
one-line errors, Ctrl-C handling, and the backbone options of the feature tools."""
from .backbone import OverridesAction, add_backbone_args, build_backbone
from .config import (OWNER_FILE, adapt_to_device, add_common_args, config_name, default_work_dir,
                     enable_compile,
                     find_syntax_error, follow_max_iters, load_config, read_config)
from .options import KEY_RULE, UnknownOptionError, check_options
from .paths import config_error, exit_if_config_missing, nearest_configs
from .run import (caused_by_interrupt, describe_error, display_available, interrupted_torch_io,
                  log_to_run_file, note, rank, run_cli)

__all__ = ['OverridesAction', 'add_backbone_args', 'build_backbone', 'OWNER_FILE',
           'adapt_to_device', 'add_common_args', 'enable_compile', 'config_name', 'default_work_dir',
           'find_syntax_error', 'follow_max_iters', 'load_config', 'read_config',
           'KEY_RULE', 'UnknownOptionError', 'check_options', 'config_error',
           'exit_if_config_missing', 'nearest_configs',
           'caused_by_interrupt', 'describe_error', 'display_available', 'interrupted_torch_io',
           'log_to_run_file', 'note', 'rank', 'run_cli']
