"""The model zoo from the command line: what there is, what an entry is, and downloads.

    python tools/zoo.py list [--kind backbone|head|model] [--task seg|depth] [--markdown]
    python tools/zoo.py info dinov2_vits14_nyu_dpt
    python tools/zoo.py download dinov2_vits14_ade20k_linear depth_anything_v2_small [--dir DIR]

``download`` fetches every file a name needs (a complete model: its backbone and head) into the
cache, printing each file's licence on its first download. ``--dir DIR`` downloads into DIR
instead, laid out as a densedino home (``DIR/checkpoints/<file>`` with the verification
records), for a machine that will be offline: there, set ``DENSEDINO_HOME=DIR`` and
``DENSEDINO_OFFLINE=1``. Details: docs/zoo.md.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='List, describe and download released weights')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    sub = parser.add_subparsers(dest='command', required=True)
    listing = sub.add_parser('list', help='every entry: name, kind, task, figure, licence')
    listing.add_argument('--kind', choices=['backbone', 'head', 'model'])
    listing.add_argument('--task', choices=['seg', 'depth'])
    listing.add_argument('--markdown', action='store_true',
                         help='the tables of docs/zoo.md instead')
    info = sub.add_parser('info', help='every field of one entry, its files and licence')
    info.add_argument('name')
    download = sub.add_parser('download', help='fetch the files of one or more entries')
    download.add_argument('names', nargs='+', metavar='NAME')
    download.add_argument('--dir', help='download into DIR/checkpoints (a densedino home for '
                          'an offline machine) instead of the cache')
    for p in (listing, info, download):
        p.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def _columns(rows: Sequence[Sequence[str]]) -> List[str]:
    """Rows as left-aligned columns (the last one unpadded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ['  '.join([c.ljust(w) for c, w in zip(row, widths)] + [row[-1]]) for row in rows]


def list_entries(args: argparse.Namespace) -> None:
    from densedino.zoo import entries, render_markdown
    if args.markdown:
        print(render_markdown(), end='')
        return
    found = entries(kind=args.kind, task=args.task)
    rows = [('name', 'kind', 'task', 'figure', 'licence')]
    rows += [(e.name, e.kind, e.task or '-', e.figure or '-', e.license) for e in found]
    print('\n'.join(_columns(rows)))
    print(f'{len(found)} entries; complete models load with densedino.init_model(name), '
          'backbones with create_backbone(name, pretrained=True)')


def _where(entry) -> str:
    """Whether the entry's file is in densedino's cache (Hugging Face's cache is not looked at)."""
    from densedino.hub import cache_path
    path = cache_path(entry.file_name)
    return f'in the cache: {path}' if osp.isfile(path) else 'not in the cache'


def show_info(args: argparse.Namespace) -> None:
    from dataclasses import fields
    from densedino.zoo import config_text, files, get, license_text
    entry = get(args.name)
    rows = [(f.name, getattr(entry, f.name)) for f in fields(entry)]
    rows.append(('hash_prefix', entry.hash_prefix))
    for key, value in rows:
        if key == 'cfg_options':
            value = ' '.join(f'{k}={v}' for k, v in value)
        elif key == 'parts':
            value = ', '.join(value)
        print(f'{key + ":":13} {"-" if value in (None, "") else value}')
    if entry.config:
        print(f'{"config used:":13} {config_text(entry).replace("`", "")}')
    for part in files(args.name):
        print(f'{"file:":13} {part.url} ({_where(part)})')
    use = {'backbone': f'densedino.create_backbone({entry.name!r}, pretrained=True)',
           'head': f'part of {entry.name[:-len("_head")]} (densedino.init_model)',
           'model': f'densedino.init_model({entry.name!r})'}[entry.kind]
    print(f'{"use:":13} {use}')
    print(f'{"licence:":13} {license_text(entry)}'
          + (' - gated: request access first (docs/zoo.md)' if entry.gated else ''))


def download(args: argparse.Namespace) -> None:
    from densedino.hub import HOME_ENV
    from densedino.zoo import fetch, files
    wanted = {}
    for name in args.names:  # every name checked before anything is downloaded
        wanted.update((part.name, part) for part in files(name))
    if args.dir:
        os.environ[HOME_ENV] = osp.abspath(args.dir)
    for part in wanted.values():
        print(f'{part.name}: {fetch(part, into_cache=True)}')
    if args.dir:
        print(f'{len(wanted)} file(s) in {osp.join(osp.abspath(args.dir), "checkpoints")}; on '
              f'the offline machine set {HOME_ENV}={osp.abspath(args.dir)} and '
              'DENSEDINO_OFFLINE=1')


def main(args: argparse.Namespace) -> None:
    {'list': list_entries, 'info': show_info, 'download': download}[args.command](args)


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
