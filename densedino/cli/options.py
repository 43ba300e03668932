"""``--cfg-options`` keys that the config does not take are refused, with the nearest keys.

mmengine merges any key into the config, so ``train_dataloder.batch_size=2`` (one letter
missing) adds a dict nobody reads and training starts with the file's batch size. The rule
(:data:`KEY_RULE`, also in ``--help`` and docs/cli.md): a dotted key is accepted when, walking
its parts from the top of the config,

1. every part exists (a dict key, or an index into a list), or
2. the first part that does not exist is one its dict takes:

   - at the top level: a setting the runner reads (an argument of mmengine's ``Runner``, or
     one of :data:`RUNNER_SETTINGS`);
   - in a dict with ``type`` (from the file, or from a ``KEY.type=...`` override on the same
     command line): a keyword of that class's constructor, following ``**kwargs`` to the base
     classes they are passed to; a class whose ``**kwargs`` go elsewhere, or a type densedino
     cannot find, takes any key;
   - in a dataloader (``*_dataloader``): a keyword of torch's ``DataLoader``, or one of
     :data:`DATALOADER_KEYS`;
   - in any other dict without ``type`` (``arch_overrides``, ``paramwise_cfg``, ``test_cfg``,
     ``env_cfg``, ``default_hooks`` ...): any key, since nothing declares their keys;

   and the parts below it are not checked (there is nothing to compare them with), or
3. a part above it is itself set on the same command line (a whole new value).
"""
import difflib
import inspect
from typing import Any, Dict, Iterable, Optional, Set

#: The rule, in one sentence, for error messages and ``--help``.
KEY_RULE = ("a key must exist in the config, or be a keyword of the class its dict's 'type' "
            'builds (at the top level: a runner setting); see docs/cli.md')

#: Top-level keys read besides mmengine ``Runner``'s arguments: by mmengine's runner
#: (``model_wrapper_cfg`` ... ``compile``), by :class:`~densedino.engine.DensedinoRunner` and
#: ``build_runner`` (``load_strict``, ``check_data``, ``nonfinite_guard``, ``runner_type``),
#: by mmengine's ``Config`` (``custom_imports``) and by ``tools/test.py`` (``tta_*``).
RUNNER_SETTINGS = ('model_wrapper_cfg', 'sync_bn', 'find_unused_parameters',
                   'activation_checkpointing', 'efficient_conv_bn_eval', 'compile',
                   'load_strict', 'check_data', 'nonfinite_guard', 'runner_type',
                   'custom_imports', 'tta_model', 'tta_pipeline')

#: Keys that mmengine's builders take out of a section's dicts before calling the class.
BUILDER_KEYS = {'optim_wrapper': ('constructor', 'paramwise_cfg'),
                'param_scheduler': ('convert_to_iter_based',),
                'default_hooks': ('priority',), 'custom_hooks': ('priority',)}


#: Keys of a dataloader dict that mmengine's ``Runner.build_dataloader`` takes out before it
#: calls torch's ``DataLoader`` (whose keywords are taken as well).
DATALOADER_KEYS = ('dataset', 'num_batch_per_epoch', 'disable_subprocess_warning')


class UnknownOptionError(ValueError):
    """A ``--cfg-options`` key that the config does not take; the message names the nearest."""


def check_options(cfg: Any, options: Dict[str, Any]) -> None:
    """Raise :class:`UnknownOptionError` for the first key of ``options`` (``--cfg-options``)
    that ``cfg`` (before the options are merged) does not take; see the module docstring."""
    for key in options:
        problem = key_problem(cfg, key, options)
        if problem is not None:
            raise UnknownOptionError(f'--cfg-options {key}: {problem} ({KEY_RULE})')


def key_problem(cfg: Any, key: str, options: Dict[str, Any]) -> Optional[str]:
    """Why the dotted ``key`` is refused, or ``None`` when the config takes it."""
    parts = key.split('.')
    node = cfg
    for i, part in enumerate(parts):
        where = '.'.join(parts[:i])
        if where and where in options:
            return None  # a whole new value is given for a key above this one
        if isinstance(node, (list, tuple)):
            if not part.isdigit():
                return f'{where} is a list: index it with a number, e.g. {where}.0'
            if int(part) >= len(node):
                return f'{where} has {len(node)} items, so no index {part}'
            node = node[int(part)]
            continue
        if not isinstance(node, dict) and not hasattr(node, 'keys'):
            return None  # a value turned into a dict: mmengine's merge decides
        if part in node:
            node = node[part]
            continue
        return _new_key_problem(node, part, where, options)
    return None


def _new_key_problem(node: Any, part: str, where: str, options: Dict[str, Any]) -> Optional[str]:
    """Why ``part`` may not be added to the dict ``node`` at ``where`` (``None``: it may)."""
    taken = accepted_keys(node, where, options)
    if taken is None or part in taken:
        return None
    near = difflib.get_close_matches(part, sorted(set(node) | taken), n=3, cutoff=0.6)
    prefix = f'{where}.' if where else ''
    owner = f'{where} has no key' if where else 'the config has no top-level key'
    kind = f' ({_type_name(node, where, options)} takes no such keyword)' \
        if _type_of(node, where, options) is not None else ''
    hint = f'; did you mean {" or ".join(prefix + k for k in near)}?' if near else ''
    overrides = sorted(k for k in taken if k.endswith('_overrides'))
    if not near and overrides:  # e.g. drop_path_rate: an option of the architecture
        hint = f'; options of the architecture go under {prefix}{overrides[0]}.{part}'
    return f'{owner} {part!r}{kind}{hint}'


def accepted_keys(node: Any, where: str, options: Dict[str, Any]) -> Optional[Set[str]]:
    """The new keys the dict ``node`` at ``where`` takes; ``None`` for any key."""
    if not where:
        return _runner_keys()
    section = where.split('.')[0]
    extra = set(BUILDER_KEYS.get(section, ())) | {'type', '_scope_'}
    kind = _type_of(node, where, options)
    if kind is not None:
        keywords = constructor_keywords(_resolve(kind))
        return None if keywords is None else keywords | extra
    if where.endswith('_dataloader') and '.' not in where:
        from torch.utils.data import DataLoader
        return constructor_keywords(DataLoader) | set(DATALOADER_KEYS)
    return None


def _type_of(node: Any, where: str, options: Dict[str, Any]) -> Any:
    """The ``type`` of the dict at ``where``: a ``KEY.type=`` override wins over the file."""
    return options.get(f'{where}.type', node.get('type') if hasattr(node, 'get') else None)


def _type_name(node: Any, where: str, options: Dict[str, Any]) -> str:
    kind = _type_of(node, where, options)
    return kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))


def _resolve(kind: Any) -> Any:
    """The class or function a ``type`` names, looked up in densedino's registries (and their
    mmseg / mmengine parents); ``None`` when none has it."""
    if not isinstance(kind, str):
        return kind
    from mmengine.registry import FUNCTIONS

    from densedino import registry
    for name in registry.__all__:
        found = getattr(registry, name).get(kind)
        if found is not None:
            return found
    return FUNCTIONS.get(kind)


def constructor_keywords(target: Any) -> Optional[Set[str]]:
    """The keywords ``target`` (a class or function) takes; ``None`` for any keyword.

    A class's ``**kwargs`` are taken to go to the next base class's ``__init__``: its keywords
    are added, until an ``__init__`` without ``**kwargs``. ``**kwargs`` that reach ``object``
    go elsewhere (any keyword); ``torch.nn.Module`` takes none.
    """
    if target is None:
        return None
    if not inspect.isclass(target):
        return None if _takes_any(target) else _keywords([target])
    import torch.nn
    inits = []
    for klass in target.__mro__:
        if klass is object:
            return None
        if klass is torch.nn.Module:
            break
        if '__init__' in vars(klass):
            inits.append(klass.__init__)
            if not _takes_any(klass.__init__):
                break
    return _keywords(inits)


def _keywords(functions: Iterable[Any]) -> Optional[Set[str]]:
    """The named parameters of ``functions``; ``None`` if a signature cannot be read."""
    names: Set[str] = set()
    for function in functions:
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return None  # a builtin without a signature: cannot tell
        names.update(p.name for p in parameters
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != 'self')
    return names


def _takes_any(function: Any) -> bool:
    """Whether ``function`` has ``**kwargs`` (an unreadable signature counts as yes)."""
    try:
        return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return True


def _runner_keys() -> Set[str]:
    from mmengine.runner import Runner
    return (constructor_keywords(Runner) or set()) - {'cfg'} | set(RUNNER_SETTINGS)
