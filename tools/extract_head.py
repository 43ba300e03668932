"""Write one head of a head-sweep checkpoint as an ordinary single-head checkpoint.

    python tools/extract_head.py work_dirs/seg/ade20k_linear_sweep/iter_40000.pth --list
    python tools/extract_head.py work_dirs/seg/ade20k_linear_sweep/iter_40000.pth \
        --head lr_1e-03 --out checkpoints/ade20k_linear_lr1e-3.pth

The sweep trained its heads on one frozen backbone (``model.heads`` of a ``HeadSweepSegmentor``
/ ``HeadSweepDepthEstimator``: docs/sweeps.md). The output holds the backbone and the chosen
head as ``decode_head.*``, so it loads strictly into the single-head config the sweep was made
from (e.g. configs/seg/ade20k_linear.py for configs/seg/ade20k_linear_sweep.py) and predicts as
the head did in the sweep. When the head's spec changed more than its learning rate (other
blocks, class token, another head type), the tool prints the ``--cfg-options`` that make the
single-head config match it. ``--list`` prints the heads, which of them diverged, and the spec
of each, from the checkpoint alone.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import run_cli  # noqa: E402

#: Spec keys that set something other than a ``model.decode_head`` option.
SPEC_TARGETS = {'lr': 'optim_wrapper.optimizer.lr',
                'weight_decay': 'optim_wrapper.optimizer.weight_decay',
                'out_indices': 'model.backbone.out_indices'}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='a head-sweep checkpoint (tools/train.py output)')
    parser.add_argument('--head', help='the head to extract (see --list)')
    parser.add_argument('--out', help='output .pth (required with --head)')
    parser.add_argument('--list', action='store_true', help='list the heads and exit')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def sweep_specs(meta: dict) -> dict:
    """``model.heads`` of the config the sweep ran with (mmengine stores it in the checkpoint's
    meta), or {} if the checkpoint has no config."""
    from mmengine.config import Config
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not text:
        return {}
    cfg = Config.fromstring(text, file_format='.py')
    return dict(cfg.model.get('heads') or {})


def cfg_options(spec: dict) -> list:
    """``key=value`` overrides that make the single-head config train / build this head."""
    if 'head' in spec:
        return [f'model.decode_head={dict(spec["head"])!r}  (the whole head: edit the config)']
    return [f'{SPEC_TARGETS.get(k, "model.decode_head." + k)}={v!r}' for k, v in spec.items()]


def main(args: argparse.Namespace) -> None:
    import torch

    from densedino.engine import model_state_dict, read_model_checkpoint, write_atomic
    from densedino.models import sweep_head_names, sweep_head_state
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    ckpt = read_model_checkpoint(args.checkpoint)
    state = model_state_dict(ckpt, args.checkpoint)
    names = sweep_head_names(state)
    if not names:
        raise ValueError(f'{args.checkpoint} is not a head-sweep checkpoint (no heads.* keys)')
    meta = ckpt.get('meta') or {}
    specs = sweep_specs(meta)
    diverged = state.get('head_diverged', torch.zeros(len(names), dtype=torch.bool)).tolist()
    if args.list or not args.head:
        for name, bad in zip(names, diverged):
            print(f'{name}{"  (diverged)" if bad else ""}  {specs.get(name, "")}')
        if not args.list:
            raise SystemExit('error: give --head NAME (one of the above) and --out FILE')
        return
    if not args.out:
        raise SystemExit('error: --head needs --out FILE')
    out = sweep_head_state(state, args.head, names)
    if diverged[names.index(args.head)]:
        print(f'warning: head {args.head} diverged during training; its weights are what it '
              'had then', file=sys.stderr)
    new_meta = {k: v for k, v in meta.items() if k in ('dataset_meta', 'seed', 'experiment_name')}
    new_meta['head_sweep'] = dict(head=args.head, source=osp.abspath(args.checkpoint),
                                  spec=dict(specs.get(args.head, {})))
    write_atomic(args.out, lambda tmp: torch.save(dict(state_dict=out, meta=new_meta), tmp))
    print(f'wrote head {args.head} ({len(out)} tensors, backbone included) to {args.out}')
    options = [o for o in cfg_options(specs.get(args.head, {})) if not o.startswith('optim')]
    if options:
        print('the single-head config matches this head with --cfg-options ' + ' '.join(options))


if __name__ == '__main__':
    run_cli(main, parse_args())
