"""Reproduce a table of dense figures in one command: every entry of a suite, evaluated (or
trained, then evaluated) exactly as tools/test.py does, against its published target.

    python tools/benchmark_suite.py --suite NAME [--data-root data] [--work-dir DIR] [--train]
        [--checkpoint BACKBONE] [--only ENTRY ...] [--resume] [--smoke]

Suites are data: ``configs/suites/<name>.py`` (read with mmengine's Config) lists its entries
(``entries = [dict(name, config, metric, target, source, ...)]``) or names the zoo's complete
models of one backbone (``zoo = dict(family=..., arch=...)``), whose configs and published
figures come from ``densedino.zoo``. Results go to ``<work-dir>/results.json``, ``results.md``
(ours vs paper) and ``results.png`` (the same as bars); each entry's folder ``<work-dir>/<entry>``
holds its predictions (``predictions/``, as ``tools/test.py --out`` writes them), the first
test images drawn (``panels/``, image | ground truth | prediction) and, for segmentation,
``per_class_iou.png``, ``confusion.png`` and ``confusion.npy`` (rows: ground truth). See
docs/benchmarks.md, "Reproducing the papers".
"""
import argparse
import difflib
import hashlib
import json
import os
import os.path as osp
import re
import sys
import time
from typing import Dict, List, Optional, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SUITES_DIR = osp.join(ROOT, 'configs', 'suites')
RESULTS_JSON, RESULTS_MD, RESULTS_PNG = 'results.json', 'results.md', 'results.png'
PANELS = 4  # prediction panels drawn per entry (the first test images)

sys.path.insert(0, ROOT)
from densedino.cli import load_config, note, run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; the exit-code rule is in --help so scripts can rely on it."""
    parser = argparse.ArgumentParser(
        description='Run a suite of dense benchmarks (configs/suites/<name>.py) and compare '
        'with the published figures. Exit code 0 only if at least one entry has results and '
        'none failed; an entry whose dataset is missing is skipped with one line.')
    parser.add_argument('--suite', required=True, help=f'suite name: {", ".join(suite_names())}')
    parser.add_argument('--data-root', default=None, help='folder holding the datasets: a '
                        'config\'s data/<x> is read from DATA_ROOT/<x> (default: data; with '
                        '--smoke: WORK_DIR/data, where the small scenes are written)')
    parser.add_argument('--work-dir', default=None,
                        help='where results and per-entry runs go (default: work_dirs/suites/NAME)')
    parser.add_argument('--train', action='store_true', help='train each head with its '
                        'protocol config first (implied by suites without released heads)')
    parser.add_argument('--checkpoint', help='with --train: the backbone checkpoint to train on '
                        '(model.backbone.checkpoint, pretrained=False)')
    parser.add_argument('--only', nargs='+', metavar='ENTRY', help='run only these entries')
    parser.add_argument('--resume', action='store_true', help='skip entries finished in '
                        'WORK_DIR/results.json; continue training from an entry\'s last checkpoint')
    parser.add_argument('--smoke', action='store_true', help='CI-sized settings (tiny backbone, '
                        'few iterations and scenes): the synthetic suite in under a minute')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def suite_names() -> List[str]:
    """The suites shipped in configs/suites/."""
    return sorted(osp.splitext(n)[0] for n in os.listdir(SUITES_DIR)
                  if n.endswith('.py') and not n.startswith('_'))


def nearest(name: str, names: List[str]) -> str:
    """' (did you mean X?)' for a mistyped name, else the list of valid names."""
    near = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    return f'did you mean {", ".join(near)}?' if near else f'known: {", ".join(names)}'


def load_suite(name: str) -> Tuple[List[dict], bool]:
    """The suite's entries and whether it must train (no released heads); one-line error for an
    unknown suite."""
    from mmengine.config import Config
    if name not in suite_names():
        raise SystemExit(f'error: unknown suite {name!r}; {nearest(name, suite_names())}')
    suite = Config.fromfile(osp.join(SUITES_DIR, f'{name}.py'))
    if suite.get('zoo'):
        entries = zoo_entries(**suite.zoo)
    else:
        entries = [dict(e) for e in suite.get('entries', [])]
    return entries, bool(suite.get('train', False))


def zoo_entries(family: str, arch: str) -> List[dict]:
    """One suite entry per complete zoo model of ``arch``: its config, overrides and published
    figure, read from the zoo rather than restated."""
    from densedino import zoo
    rows = [e for e in zoo.entries(kind='model', family=family) if e.arch == arch]
    return [dict(name=e.name[len(arch) + 1:], zoo=e.name, config=e.config,
                 cfg_options=dict(e.cfg_options), tta=e.name.endswith('_ms'),
                 **parse_figure(e.figure, e.task)) for e in rows]


def parse_figure(figure: str, task: str) -> dict:
    """``'ADE20K linear 44.3 mIoU (DINOv2 Table 10)'`` -> metric ``mIoU``, target 44.3, source
    ``DINOv2 Table 10``: the zoo writes each figure once, as text."""
    value = re.search(r'\d+\.\d+', figure)
    source = re.search(r'\(([^()]*)\)\s*$', figure)
    return dict(metric='mIoU' if task == 'seg' else 'rmse',
                target=float(value.group()) if value else None,
                source=source.group(1).split(',')[0] if source else figure)


def select(entries: List[dict], only: Optional[List[str]], suite: str) -> List[dict]:
    """The entries named by ``--only`` (all without it); one-line error for an unknown name."""
    if not only:
        return entries
    names = [e['name'] for e in entries]
    for name in only:
        if name not in names:
            raise SystemExit(f'error: suite {suite} has no entry {name!r}; {nearest(name, names)}')
    return [e for e in entries if e['name'] in only]


def entry_config(entry: dict, args: argparse.Namespace, work_dir: str):
    """The entry's config as tools/train.py and tools/test.py read it (overrides checked),
    with its datasets under ``--data-root`` and the ``--smoke`` / ``--checkpoint`` settings."""
    options = dict(entry.get('cfg_options') or {})
    if args.smoke:
        options.update(entry['smoke'])
    if args.checkpoint:
        options.update({'model.backbone.checkpoint': args.checkpoint,
                        'model.backbone.pretrained': False})
    cfg = load_config(argparse.Namespace(
        config=osp.join(ROOT, entry['config']), cfg_options=options, launcher='none',
        local_rank=0, work_dir=work_dir))
    if cfg.get('visualizer'):  # mmengine keeps one visualiser per name in a process: a name
        # of its own, or this entry's panels would go to an earlier entry's folder
        cfg.visualizer['name'] = f'suite_{entry["name"]}_{osp.basename(work_dir)}_{time.time_ns()}'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        root = dataset.get('data_root')
        if isinstance(root, str) and not osp.isabs(root) and root.split('/')[0] == 'data':
            dataset['data_root'] = osp.join(args.data_root, *root.split('/')[1:])
    return cfg


def missing_data(cfg, train: bool) -> Optional[str]:
    """Why the entry cannot run for want of data: where the data should be and what the folder
    must hold; ``None`` when it is there (the synthetic scenes are written on first use)."""
    loaders = ('train_dataloader', 'test_dataloader') if train else ('test_dataloader',)
    for loader in loaders:
        dataset = cfg[loader].dataset
        if str(dataset.get('type', '')).startswith('Synthetic'):
            continue
        root = dataset.get('data_root', '')
        prefix = dataset.get('data_prefix') or {}
        needed = [p for p in (prefix.get('img_path'), prefix.get('seg_map_path'),
                              dataset.get('ann_file'), dataset.get('split_file')) if p]
        absent = [p for p in needed if not osp.exists(osp.join(root, p))]
        if not osp.isdir(root) or absent:
            return (f'no {loader.split("_")[0]} data at {root}: that folder must hold '
                    f'{", ".join(needed)} (--data-root sets the folder above; '
                    'docs/protocols.md describes each dataset)')
    return None


def sha256(path: str) -> str:
    """The file's sha256, recorded so a result names exactly the weights it came from."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def weight_files(path: str) -> List[str]:
    """The files a backbone checkpoint consists of: itself, or every file of a checkpoint
    folder (a Hugging Face copy), so each gets its sha256 recorded."""
    if not osp.isdir(path):
        return [path]
    return sorted(osp.join(d, n) for d, _, names in os.walk(path) for n in names)


def train_entry(entry: dict, args: argparse.Namespace, entry_dir: str) -> str:
    """Train the head as tools/train.py does, in ``entry_dir`` (``--resume``: from its last
    checkpoint; a finished run is not trained again); returns the final checkpoint."""
    from densedino.engine import build_runner, latest_checkpoint
    from tools.train import apply_resume, claim_work_dir
    cfg = entry_config(entry, args, entry_dir)
    last = latest_checkpoint(entry_dir) if args.resume else None
    if last and osp.basename(last) == f'iter_{cfg.train_cfg.max_iters}.pth':
        note(f'  {entry["name"]}: already trained ({last}), not training again')
        return last
    apply_resume(cfg, argparse.Namespace(resume=None, resume_if_any=args.resume))
    claim_work_dir(cfg, osp.join(ROOT, entry['config']))
    runner = build_runner(cfg)
    runner.train()
    runner.release_dataloaders()
    return latest_checkpoint(entry_dir)


def released_checkpoint(entry: dict, entry_dir: str) -> Tuple[str, Dict[str, str]]:
    """The released model as one full checkpoint (backbone + head, assembled by
    ``densedino.init_model``), so tools/test.py's path evaluates it unchanged; and the sha256
    of each released file."""
    import torch
    from densedino import init_model, zoo
    files = {path: sha256(path) for path in (zoo.fetch(p) for p in zoo.files(entry['zoo']))}
    model = init_model(entry['zoo'])
    path = osp.join(entry_dir, 'released_model.pth')
    os.makedirs(entry_dir, exist_ok=True)
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': model.dataset_meta}}, path)
    return path, files


def evaluate(entry: dict, args: argparse.Namespace, entry_dir: str, checkpoint: str) -> dict:
    """The entry's metrics, through tools/test.py's own function (``--tta`` for +ms), with the
    predictions written (``--out``) and the first images drawn (``--show-dir``); for
    segmentation also the confusion matrix, kept by a metric in the same pass, and its
    figures. Returns the record's ``metrics``, ``predictions``, ``panels`` (and
    ``per_class_iou``, ``figures``)."""
    from tools.test import run_test
    cfg = entry_config(entry, args, osp.join(entry_dir, 'test'))
    if not args.train:  # the weights come from the full checkpoint, not the config
        cfg.model.backbone.checkpoint = None
        cfg.model.backbone.pretrained = False
    seg = 'IoU' in str(cfg.test_evaluator.get('type', ''))
    options = argparse.Namespace(
        config=entry['config'], checkpoint=checkpoint, tta=bool(entry.get('tta')),
        out=osp.join(entry_dir, 'predictions'), show_dir=osp.join(entry_dir, 'panels'),
        show_max=PANELS)
    runner, metrics = run_test(cfg, options, [dict(type='SegConfusionMetric')] if seg else [])
    runner.release_dataloaders()  # the next entry would wait for its workers (10-20 s)
    result = dict(metrics={k: float(v) for k, v in metrics.items()},
                  predictions=options.out, panels=list(getattr(runner.visualizer, 'written', [])))
    if seg:
        result.update(confusion_figures(runner, entry, entry_dir))
    return result


def confusion_figures(runner, entry: dict, entry_dir: str) -> dict:
    """Per-class IoU (into the record) and the figures of the worst classes: their IoU bars
    and their rows of the confusion matrix."""
    import numpy as np

    from densedino.evaluation import SegConfusionMetric, iou_from_confusion
    from densedino.visualization import plot_confusion, plot_per_class_iou
    metric = next(m for m in runner.test_evaluator.metrics if isinstance(m, SegConfusionMetric))
    names, confusion = list(metric.class_names), metric.confusion
    iou = iou_from_confusion(confusion).iou  # percent, as mmseg reports
    np.save(osp.join(entry_dir, 'confusion.npy'), confusion)
    title = f'{entry["name"]}: the worst classes'
    figures = [plot_per_class_iou(names, iou, osp.join(entry_dir, 'per_class_iou.png'),
                                  title=title),
               plot_confusion(confusion, names, osp.join(entry_dir, 'confusion.png'),
                              title=title)]
    per_class = {n: (None if np.isnan(v) else round(float(v), 4)) for n, v in zip(names, iou)}
    return dict(per_class_iou=per_class, figures=figures)


def run_entry(entry: dict, args: argparse.Namespace) -> dict:
    """Train (``--train``) or fetch the released model, then evaluate: the entry's record."""
    entry_dir = osp.join(args.work_dir, entry['name'])
    record = dict(config=entry['config'], zoo=None if args.train else entry.get('zoo'),
                  tta=bool(entry.get('tta')), metric=entry['metric'], target=entry['target'],
                  source=entry['source'])
    start = time.perf_counter()
    if args.train:
        checkpoint = train_entry(entry, args, entry_dir)
        used = [checkpoint] + (weight_files(args.checkpoint) if args.checkpoint else [])
        files = {path: sha256(path) for path in used}
        record.update(checkpoint=checkpoint, backbone_checkpoint=args.checkpoint)
    else:
        checkpoint, files = released_checkpoint(entry, entry_dir)
    record.update(evaluate(entry, args, entry_dir, checkpoint))
    if not args.train:
        os.remove(checkpoint)  # a copy of the released files, whose hashes are recorded
    record.update(files=files, value=record['metrics'].get(entry['metric']),
                  runtime_s=round(time.perf_counter() - start, 1), status='done')
    return record


def environment() -> dict:
    """Where the figures were measured: device and library versions."""
    import mmengine
    import mmseg
    import torch

    import densedino
    from densedino.benchmark import cpu_model_name
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = (f'cpu ({cpu_model_name()}, {os.cpu_count()} logical CPUs, '
                  f'{torch.get_num_threads()} torch threads)')
    return dict(device=device, versions=dict(torch=torch.__version__,
                                             mmengine=mmengine.__version__,
                                             mmseg=mmseg.__version__,
                                             densedino=densedino.__version__))


def read_results(path: str) -> dict:
    """The records of an earlier run (``--resume``), or none."""
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f).get('entries', {})


def markdown(records: Dict[str, dict]) -> str:
    """entry | metric | ours | paper | difference | source, one row per entry."""
    lines = ['| entry | metric | ours | paper | difference | source |', '|---|---|---|---|---|---|']
    for name, r in records.items():
        if r.get('status') != 'done':
            lines.append(f'| {name} | {r.get("metric", "")} | {r.get("status")} | '
                         f'{fmt(r.get("target"))} | | {r.get("reason", "")} |')
            continue
        diff = None if r['value'] is None or r['target'] is None else r['value'] - r['target']
        sign = '+' if diff is not None and round(diff, 4) > 0 else ''
        lines.append(f'| {name} | {r["metric"]} | {fmt(r["value"])} | {fmt(r["target"])} | '
                     f'{sign}{fmt(diff)} | {r["source"]} |')
    return '\n'.join(lines) + '\n'


def fmt(value: Optional[float]) -> str:
    """Four significant decimals at most: the figures are quoted to 1-4 decimals."""
    return '' if value is None else f'{value:.4f}'.rstrip('0').rstrip('.')


def write_results(args: argparse.Namespace, records: Dict[str, dict], env: dict) -> str:
    """results.json (everything), results.md (the table) and results.png (its bars: ours vs
    paper per entry, one panel per metric); returns the table."""
    from densedino.engine import write_text_atomic
    from densedino.visualization import plot_suite_bars
    table = markdown(records)
    payload = dict(suite=args.suite, train=args.train, smoke=args.smoke, **env, entries=records)
    os.makedirs(args.work_dir, exist_ok=True)
    write_text_atomic(osp.join(args.work_dir, RESULTS_JSON), json.dumps(payload, indent=1) + '\n')
    write_text_atomic(osp.join(args.work_dir, RESULTS_MD),
                      f'Suite `{args.suite}` on {env["device"]}\n\n{table}')
    bars = [dict(name=name, metric=r['metric'], paper=r.get('target'),
                 ours=r.get('value') if r.get('status') == 'done' else None)
            for name, r in records.items()]
    plot_suite_bars(bars, osp.join(args.work_dir, RESULTS_PNG),
                    title=f'Suite {args.suite}: densedino vs the published figures')
    return table


def prepare(args: argparse.Namespace) -> List[dict]:
    """Resolve the suite, its entries and the defaults that depend on them."""
    entries, must_train = load_suite(args.suite)
    entries = select(entries, args.only, args.suite)
    if must_train and not args.train:
        note(f'suite {args.suite}: no released heads, training each entry (--train implied)')
        args.train = True
    if args.checkpoint and not args.train:
        raise SystemExit('error: --checkpoint needs --train (it sets the backbone to train on)')
    if args.checkpoint and not osp.exists(args.checkpoint):
        raise SystemExit(f'error: --checkpoint {args.checkpoint} does not exist')
    if args.smoke and any('smoke' not in e for e in entries):
        raise SystemExit(f'error: --smoke: suite {args.suite} has no smoke settings '
                         '(the synthetic suite has)')
    args.work_dir = args.work_dir or osp.join('work_dirs', 'suites', args.suite)
    if args.data_root is None:
        args.data_root = osp.join(args.work_dir, 'data') if args.smoke else 'data'
    return entries


def main(args: argparse.Namespace) -> None:
    """Run every selected entry in turn, saving the results after each, so an interrupted
    suite loses at most the entry in progress (``--resume`` goes on from there)."""
    entries = prepare(args)
    records = read_results(osp.join(args.work_dir, RESULTS_JSON)) if args.resume else {}
    env, start = environment(), time.perf_counter()
    for i, entry in enumerate(entries, 1):
        name, tag = entry['name'], f'[{i}/{len(entries)}] {entry["name"]}'
        if records.get(name, {}).get('status') == 'done':
            note(f'{tag}: finished in an earlier run, skipped (--resume)')
            continue
        why = missing_data(entry_config(entry, args, osp.join(args.work_dir, name)), args.train)
        if why:
            note(f'{tag}: skipped: {why}')
            records[name] = dict(config=entry['config'], metric=entry['metric'],
                                 target=entry['target'], status='skipped', reason=why)
            continue
        note(f'{tag}: start ({"train + test" if args.train else "released model, test"}; '
             f'{elapsed(start)} into the suite)')
        records[name] = run_or_fail(entry, args)
        done = records[name]['status'] == 'done'
        note(f'{tag}: {records[name]["status"]} in {records[name]["runtime_s"]:.0f} s'
             + (f' ({entry["metric"]} {fmt(records[name]["value"])})' if done else ''))
        write_results(args, records, env)
    print(write_results(args, records, env), end='')
    note(f'suite {args.suite} finished in {elapsed(start)}; results in '
         f'{osp.join(args.work_dir, RESULTS_JSON)}, {RESULTS_MD} and {RESULTS_PNG}; '
         'predictions, panels and figures in each entry\'s folder')
    statuses = [r['status'] for r in records.values()]
    if 'failed' in statuses or 'done' not in statuses:
        raise SystemExit(1)


def run_or_fail(entry: dict, args: argparse.Namespace) -> dict:
    """The entry's record; an error fails this entry only (one line), not the suite."""
    from densedino.cli import describe_error
    start = time.perf_counter()
    try:
        return run_entry(entry, args)
    except Exception as e:  # noqa: BLE001 - the other entries still run
        if args.debug:
            raise
        kind, message = describe_error(e)
        note(f'  {entry["name"]} failed: {kind}: {message}')
        return dict(config=entry['config'], metric=entry['metric'], target=entry['target'],
                    status='failed', reason=f'{kind}: {message}',
                    runtime_s=round(time.perf_counter() - start, 1))


def elapsed(start: float) -> str:
    """``1 min 05 s`` since ``start``."""
    seconds = int(time.perf_counter() - start)
    return f'{seconds // 60} min {seconds % 60:02d} s'


if __name__ == '__main__':
    run_cli(main, parse_args())
