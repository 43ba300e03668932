"""The package's layers import one way: read every module's imports and check the rules."""
import ast
import os
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = osp.join(REPO, 'densedino')

# subpackage -> the densedino subpackages it must not import
FORBIDDEN = {
    'models': {'datasets', 'evaluation', 'visualization', 'pretrain', 'apis', 'engine'},
    'datasets': {'models'},
    'evaluation': {'models'},
    'visualization': {'pretrain'},
    'pretrain': {'visualization'},
}


def densedino_imports(path: str):
    """(line, module) for every densedino module that the file at ``path`` imports."""
    rel = osp.relpath(path, REPO)[:-len('.py')].split(os.sep)
    package = rel[:-1]  # the module's own package, for relative imports
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read(), filename=path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            names = ['.'.join(base + ([node.module] if node.module else []))]
        else:
            continue
        yield from ((node.lineno, n) for n in names if n.split('.')[0] == 'densedino')


def test_relative_imports_resolve_as_python_does():
    imports = dict((m, line) for line, m in densedino_imports(
        osp.join(PACKAGE, 'pretrain', 'knn_folders.py')))
    assert 'densedino.images' in imports and 'densedino.models.layers' in imports


def test_imports_flow_one_way():
    broken = []
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = osp.join(root, name)
            parts = osp.relpath(path, PACKAGE).split(os.sep)
            layer = parts[0] if len(parts) > 1 else None
            for line, module in densedino_imports(path):
                target = module.split('.')
                if layer in FORBIDDEN and len(target) > 1 and target[1] in FORBIDDEN[layer]:
                    broken.append(f'{osp.relpath(path, REPO)}:{line} imports {module}')
    assert not broken, 'imports against the layering:\n' + '\n'.join(broken)


def script_imports(path: str):
    """(line, module, names) of every ``densedino`` / ``tools`` import in a script."""
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read(), filename=path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module, [alias.name for alias in node.names]


def public_api_violation(module: str, names) -> str:
    """Why importing ``names`` from ``module`` reaches past the public API ('' if it does not).

    Public modules are ``densedino``, its subpackages and its top-level modules; their public
    names are those in ``__all__``. Tools may import tools, but not private ``tools._*``.
    """
    import importlib
    parts = module.split('.')
    if parts[0] == 'tools':
        return f'{module} is private' if any(p.startswith('_') for p in parts) else ''
    if parts[0] != 'densedino':
        return ''
    path = osp.join(REPO, *parts)
    package = osp.isfile(osp.join(path, '__init__.py'))
    top_level_module = len(parts) == 2 and osp.isfile(path + '.py')
    if any(p.startswith('_') for p in parts) or not (package or top_level_module):
        return f'{module} is not a public module (import from its package)'
    exported = set(getattr(importlib.import_module(module), '__all__', []))
    hidden = [n for n in names if n not in exported and not (
        len(parts) == 1 and n in PUBLIC_SUBMODULES)]
    return f'{", ".join(hidden)} not in {module}.__all__' if hidden else ''


#: subpackages and top-level modules that ``from densedino import X`` may name
PUBLIC_SUBMODULES = {osp.splitext(n)[0] for n in os.listdir(PACKAGE) if not n.startswith('_')}


def test_public_api_rule_catches_private_paths():
    assert public_api_violation('densedino.models.backbones.precision', ['to_bf16'])
    assert public_api_violation('densedino.models', ['NotExported'])
    assert public_api_violation('tools._cli', ['run_cli'])
    assert public_api_violation('densedino.engine.runner', ['build_runner'])
    assert not public_api_violation('densedino.models.backbones', ['to_bf16'])
    assert not public_api_violation('densedino.registry', ['MODELS'])
    assert not public_api_violation('densedino', ['cli', 'create_backbone'])


def test_tools_and_demos_use_only_public_names():
    broken = []
    for folder in ('tools', 'demo'):
        for name in sorted(os.listdir(osp.join(REPO, folder))):
            if not name.endswith('.py'):
                continue
            path = osp.join(REPO, folder, name)
            for line, module, names in script_imports(path):
                why = public_api_violation(module, names)
                if why:
                    broken.append(f'{folder}/{name}:{line}: {why}')
    assert not broken, 'past the public API:\n' + '\n'.join(broken)


MAX_FILE_LINES, MAX_FUNCTION_LINES = 450, 60


def test_modules_and_functions_stay_small():
    """No file under densedino/ above 450 lines, no function above 60 (docstring included)."""
    too_big = []
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = osp.join(root, name)
            source = open(path, encoding='utf-8').read()
            rel = osp.relpath(path, REPO)
            if source.count('\n') > MAX_FILE_LINES:
                too_big.append(f'{rel}: {source.count(chr(10))} lines')
            for node in ast.walk(ast.parse(source, filename=path)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        too_big.append(f'{rel}:{node.lineno} {node.name}: {length} lines')
    assert not too_big, 'over the size limits:\n' + '\n'.join(too_big)
