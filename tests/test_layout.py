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
        osp.join(PACKAGE, 'pretrain', 'features.py')))
    assert 'densedino.images' in imports and 'densedino.ops' in imports


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
