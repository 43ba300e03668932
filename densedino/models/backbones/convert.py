"""Checkpoint converters: small pure functions from each source layout to densedino's keys.

densedino's keys are the official torch-hub keys (``cls_token``, ``pos_embed``,
``blocks.{i}.attn.qkv.weight`` ...), except DINOv3's ``storage_tokens`` which are called
``register_tokens`` like DINOv2's. ``detect_format`` tells the layout from key signatures;
``to_densedino`` dispatches to the converter for that layout.
"""
import math
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

StateDict = Dict[str, torch.Tensor]

# Heads and poolers that sit beside a backbone in released files and are not part of it.
_HEAD_PREFIXES = ('head.', 'dino_head.', 'ibot_head.', 'pooler.', 'classifier.')


def _first_key_with(sd: StateDict, suffix: str) -> Optional[str]:
    return next((k for k in sd if k == suffix or k.endswith('.' + suffix)), None)


def detect_format(sd: StateDict) -> str:
    """Name the layout of a backbone state dict.

    Returns:
        'hf_vit' (DINOv1 in transformers' ViTModel), 'hf_dinov2' (Dinov2Model and
        Dinov2WithRegistersModel), 'hf_dinov3' (DINOv3ViTModel), 'hf_dinov3_convnext',
        'timm', 'official_training' (teacher/student weights with prefixes or block chunks),
        'official' (torch-hub files), or 'unknown'.
    """
    keys = list(sd)
    if is_hf_convnext_state_dict(sd):
        return 'hf_dinov3_convnext'
    if any(re.search(r'(^|\.)layer\.\d+\.attention\.q_proj\.', k) for k in keys):
        return 'hf_dinov3'
    if _first_key_with(sd, 'embeddings.cls_token'):
        if any('layer_scale1' in k or 'register_tokens' in k for k in keys):
            return 'hf_dinov2'
        return 'hf_vit'
    if any(k.startswith(('module.', 'backbone.')) for k in keys) or \
            any(re.match(r'blocks\.\d+\.\d+\.', k) for k in keys):
        return 'official_training'
    if 'reg_token' in sd or any(re.search(r'\.gamma_1$', k) for k in keys):
        return 'timm'
    if 'cls_token' in sd or 'downsample_layers.0.0.weight' in sd:
        return 'official'
    return 'unknown'


# ------------------------------------------------------------------ official
def from_official(sd: StateDict) -> StateDict:
    """Official hub layout -> densedino (DINOv3 storage tokens, training-only norms).

    DINOv3's ``attn.qkv.bias_mask`` buffers are kept: the model multiplies the qkv bias by them
    as the official code does, so whatever mask a file holds is the one its outputs use.
    """
    out = {}
    for k, v in sd.items():
        if k.startswith('local_cls_norm.'):
            continue  # DINOv3: applied to local crops during training only
        out['register_tokens' if k == 'storage_tokens' else k] = v
    return out


def from_official_training(sd: StateDict) -> StateDict:
    """A training checkpoint's teacher/student weights: strip DDP/backbone prefixes and chunks."""
    sd = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    if any(k.startswith('backbone.') for k in sd):
        sd = {k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}
    # Block chunks are padded with Identity, so the inner index is already the global one.
    sd = {re.sub(r'^blocks\.\d+\.(\d+)\.', r'blocks.\1.', k): v for k, v in sd.items()}
    return from_official(_drop_heads(sd))


def _drop_heads(sd: StateDict) -> StateDict:
    return {k: v for k, v in sd.items() if not k.startswith(_HEAD_PREFIXES)}


# -------------------------------------------------------------- Hugging Face
_HF_VIT_RULES = [  # DINOv1 as transformers' ViTModel
    (r'embeddings\.position_embeddings', 'pos_embed'),
    (r'encoder\.layer\.(\d+)\.layernorm_before\.', r'blocks.\1.norm1.'),
    (r'encoder\.layer\.(\d+)\.layernorm_after\.', r'blocks.\1.norm2.'),
    (r'encoder\.layer\.(\d+)\.intermediate\.dense\.', r'blocks.\1.mlp.fc1.'),
    (r'encoder\.layer\.(\d+)\.output\.dense\.', r'blocks.\1.mlp.fc2.'),
]
_HF_DINOV2_RULES = [
    (r'embeddings\.position_embeddings', 'pos_embed'),
    (r'encoder\.layer\.(\d+)\.layer_scale(\d)\.lambda1', r'blocks.\1.ls\2.gamma'),
    (r'encoder\.layer\.(\d+)\.mlp\.weights_in\.', r'blocks.\1.mlp.w12.'),
    (r'encoder\.layer\.(\d+)\.mlp\.weights_out\.', r'blocks.\1.mlp.w3.'),
    (r'encoder\.layer\.(\d+)\.', r'blocks.\1.'),
]
_HF_COMMON_RULES = [
    (r'embeddings\.(cls_token|mask_token|register_tokens)$', r'\1'),
    (r'embeddings\.patch_embeddings\.projection\.', 'patch_embed.proj.'),
    (r'encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.', r'blocks.\1.attn.\2.'),
    (r'encoder\.layer\.(\d+)\.attention\.output\.dense\.', r'blocks.\1.attn.proj.'),
    (r'^layernorm\.', 'norm.'),
]
_HF_DINOV3_RULES = [
    (r'embeddings\.(cls_token|mask_token|register_tokens)$', r'\1'),
    (r'embeddings\.patch_embeddings\.', 'patch_embed.proj.'),
    (r'layer\.(\d+)\.attention\.([qkv])_proj\.', r'blocks.\1.attn.\2.'),
    (r'layer\.(\d+)\.attention\.o_proj\.', r'blocks.\1.attn.proj.'),
    (r'layer\.(\d+)\.layer_scale(\d)\.lambda1', r'blocks.\1.ls\2.gamma'),
    (r'layer\.(\d+)\.mlp\.gate_proj\.', r'blocks.\1.mlp.w1.'),
    (r'layer\.(\d+)\.mlp\.down_proj\.', r'blocks.\1.mlp.DOWN.'),
    (r'layer\.(\d+)\.mlp\.up_proj\.', r'blocks.\1.mlp.UP.'),
    (r'layer\.(\d+)\.(norm[12])\.', r'blocks.\1.\2.'),
    (r'^model\.blocks\.', 'blocks.'),
]


def _strip_hf_prefix(sd: StateDict, anchor: str) -> StateDict:
    """Drop a task-model prefix ('dinov2.', 'vit.', 'backbone.' ...) found before ``anchor``."""
    key = next((k for k in sd if k.endswith(anchor)), None)
    prefix = key[:-len(anchor)] if key else ''
    if not prefix:
        return _drop_heads(sd)
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _rename(sd: StateDict, rules: List[Tuple[str, str]]) -> StateDict:
    out = {}
    for k, v in sd.items():
        for pattern, repl in rules:
            k = re.sub(pattern, repl, k)
        out[k] = v
    return out


def _fuse_qkv(sd: StateDict) -> StateDict:
    """Concatenate per-block q/k/v (or query/key/value) projections into ``attn.qkv``."""
    out = {}
    for k, v in sd.items():
        m = re.match(r'(blocks\.\d+\.attn)\.(q|k|v|query|key|value)\.(weight|bias)$', k)
        if m is None:
            out[k] = v
        elif m.group(2) in ('q', 'query'):
            base, kind = m.group(1), m.group(3)
            names = ('q', 'k', 'v') if m.group(2) == 'q' else ('query', 'key', 'value')
            parts = [sd.get(f'{base}.{n}.{kind}') for n in names]
            if kind == 'bias' and parts[1] is None:  # DINOv3: no key bias in HF files
                parts[1] = torch.zeros_like(parts[0])
            out[f'{base}.qkv.{kind}'] = torch.cat(parts, dim=0)
    return out


def from_hf_vit(sd: StateDict) -> StateDict:
    """transformers ViTModel (DINOv1 ``facebook/dino-*``) -> densedino."""
    sd = _strip_hf_prefix(sd, 'embeddings.cls_token')
    sd = {k: v for k, v in sd.items() if k != 'embeddings.mask_token'}  # DINOv1 has none
    return _fuse_qkv(_rename(_rename(sd, _HF_VIT_RULES), _HF_COMMON_RULES))


def from_hf_dinov2(sd: StateDict) -> StateDict:
    """transformers Dinov2Model / Dinov2WithRegistersModel -> densedino."""
    sd = _strip_hf_prefix(sd, 'embeddings.cls_token')
    return _fuse_qkv(_rename(_rename(sd, _HF_COMMON_RULES), _HF_DINOV2_RULES))


def from_hf_dinov3(sd: StateDict) -> StateDict:
    """transformers DINOv3ViTModel -> densedino (RoPE periods are not stored there)."""
    sd = _rename(_strip_hf_prefix(sd, 'embeddings.cls_token'), _HF_DINOV3_RULES)
    gated = any('.mlp.w1.' in k for k in sd)
    up, down = ('w2', 'w3') if gated else ('fc1', 'fc2')
    sd = {k.replace('.mlp.UP.', f'.mlp.{up}.').replace('.mlp.DOWN.', f'.mlp.{down}.'): v
          for k, v in sd.items()}
    if 'mask_token' in sd:
        sd['mask_token'] = sd['mask_token'].reshape(1, -1)
    return _fuse_qkv(sd)


# ------------------------------------------------------- Hugging Face ConvNeXt
_HF_STEM_SUFFIX = 'stages.0.downsample_layers.0.weight'
_HF_LAYER_RE = re.compile(r'(?:^|\.)stages\.\d+\.layers\.\d+\.depthwise_conv\.weight$')
_HF_DOWNSAMPLE_RE = re.compile(r'stages\.(\d+)\.downsample_layers\.(\d+)\.(weight|bias)')
_HF_BLOCK_RE = re.compile(
    r'stages\.(\d+)\.layers\.(\d+)\.'
    r'(?:(depthwise_conv|layer_norm|pointwise_conv1|pointwise_conv2)\.(weight|bias)|gamma)')
_HF_TO_OFFICIAL_BLOCK = {'depthwise_conv': 'dwconv', 'layer_norm': 'norm',
                         'pointwise_conv1': 'pwconv1', 'pointwise_conv2': 'pwconv2'}
_HF_CONFIG_DEFAULTS = dict(depths=[3, 3, 9, 3], hidden_sizes=[96, 192, 384, 768], num_channels=3,
                           layer_norm_eps=1e-6, layer_scale_init_value=1e-6, drop_path_rate=0.0,
                           hidden_act='gelu')


def is_hf_convnext_state_dict(sd: Mapping[str, Any]) -> bool:
    """Whether ``sd`` holds Hugging Face ``DINOv3ConvNextModel`` weights.

    Rule: some key ends in ``stages.0.downsample_layers.0.weight`` and some key matches
    ``stages.{s}.layers.{j}.depthwise_conv.weight``, at any prefix ('' in saved files, ``model.`` in
    memory, or an outer wrapper's). Official keys (``stages.{s}.{j}.dwconv``) and the older HF
    ``ConvNextModel`` (``dwconv``, ``layer_scale_parameter``) do not match.
    """
    keys = list(sd.keys())
    return any(k.endswith(_HF_STEM_SUFFIX) for k in keys) and any(_HF_LAYER_RE.search(k) for k in keys)


def _hf_prefixes(sd: Mapping[str, Any]) -> Tuple[str, str]:
    """Return (stages prefix, final layer_norm prefix) of an HF state dict."""
    stage_prefixes = sorted({k[:-len(_HF_STEM_SUFFIX)] for k in sd if k.endswith(_HF_STEM_SUFFIX)})
    if len(stage_prefixes) != 1:
        raise ValueError(
            f'expected one HF DINOv3 ConvNeXt encoder, found stage prefixes {stage_prefixes!r}')
    prefix = stage_prefixes[0]
    candidates = [prefix] + ([prefix[:-len('model.')]] if prefix.endswith('model.') else [])
    for root in candidates:
        if root + 'layer_norm.weight' in sd:
            return prefix, root
    raise ValueError(f'HF state dict has no final {candidates[-1]}layer_norm.weight '
                     '(a DINOv3ConvNextBackbone checkpoint?); the official model needs the final norm')


def _official_key(rest: str) -> Optional[str]:
    """Map an HF key (encoder prefix removed) to its official name, or None if unknown."""
    m = _HF_DOWNSAMPLE_RE.fullmatch(rest)
    if m:
        return f'downsample_layers.{m[1]}.{m[2]}.{m[3]}'
    m = _HF_BLOCK_RE.fullmatch(rest)
    if m:
        tail = f'{_HF_TO_OFFICIAL_BLOCK[m[3]]}.{m[4]}' if m[3] else 'gamma'
        return f'stages.{m[1]}.{m[2]}.{tail}'
    return None


def convnext_state_dict_from_hf(sd: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Convert Hugging Face ``DINOv3ConvNextModel`` weights to official ConvNeXt keys.

    The final ``layer_norm.*`` is written as both ``norm.*`` and ``norms.3.*`` (the official file
    holds both). HF holds no redundant tensors, so any key that is not mapped raises.

    Args:
        sd: HF state dict (saved-file layout ``stages.*`` or in-memory ``model.stages.*``, possibly
            under one more outer prefix).

    Returns:
        Dict with official keys, loadable into :class:`.convnext.ConvNeXt` with ``strict=True``.

    Raises:
        ValueError: If ``sd`` is not an HF DINOv3 ConvNeXt state dict, lacks the final norm, or holds
            a key that has no official counterpart.
    """
    if not is_hf_convnext_state_dict(sd):
        raise ValueError(f'not an HF DINOv3ConvNextModel state dict; first keys: {list(sd)[:5]!r}')
    prefix, root = _hf_prefixes(sd)
    out: Dict[str, Tensor] = {}
    for key, value in sd.items():
        if key in (root + 'layer_norm.weight', root + 'layer_norm.bias'):
            name = key.rsplit('.', 1)[1]
            out[f'norm.{name}'] = value
            out[f'norms.3.{name}'] = value
            continue
        new_key = _official_key(key[len(prefix):]) if key.startswith(prefix) else None
        if new_key is None:
            raise ValueError(f'HF ConvNeXt key {key!r} has no official counterpart')
        out[new_key] = value
    return out


def convnext_config_from_hf(config: Mapping[str, Any]) -> Dict[str, Any]:
    """:class:`.convnext.ConvNeXt` constructor kwargs from an HF ``DINOv3ConvNextConfig`` dict (config.json).

    Missing fields take the HF defaults; unrelated fields (``image_size``, ``out_features``, ...) are
    ignored.

    Raises:
        ValueError: For another ``model_type`` or an activation other than GELU.
    """
    model_type = config.get('model_type', 'dinov3_convnext')
    if model_type != 'dinov3_convnext':
        raise ValueError(f"expected model_type 'dinov3_convnext', got {model_type!r}")
    cfg = {**_HF_CONFIG_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    if cfg['hidden_act'] != 'gelu':
        raise ValueError(f"only hidden_act 'gelu' is supported, got {cfg['hidden_act']!r}")
    return dict(depths=list(cfg['depths']), dims=list(cfg['hidden_sizes']),
                in_chans=cfg['num_channels'], drop_path_rate=float(cfg['drop_path_rate']),
                layer_scale_init=float(cfg['layer_scale_init_value']),
                norm_eps=float(cfg['layer_norm_eps']))


def from_hf_convnext(sd: StateDict) -> StateDict:
    return convnext_state_dict_from_hf(sd)


# --------------------------------------------------------------------- timm
def from_timm(sd: StateDict) -> StateDict:
    """timm ``vision_transformer`` names (DINOv1/DINOv2 weights) -> densedino.

    timm calls registers ``reg_token`` and names the packed SwiGLU of ViT-g ``mlp.fc1/fc2``
    (renamed to ``w12/w3`` by ``fit_to_model`` once the target is known). timm builds DINOv2
    with registers as a ``no_embed_class`` model: its ``pos_embed`` holds the patch positions
    only and its ``cls_token`` is the official class token plus the class position. That
    becomes a zero class position here, which is exact at every input size: the class position
    is added as it is, never resampled.
    """
    if any(re.search(r'\.gamma_1$', k) for k in sd):
        raise ValueError('timm Eva-style (DINOv3) checkpoints are not supported; use the official '
                         '.pth or the Hugging Face files of the model')
    out = {('register_tokens' if k == 'reg_token' else k): v for k, v in _drop_heads(sd).items()}
    pos = out.get('pos_embed')
    if pos is not None and pos.ndim == 3 and math.isqrt(pos.shape[1]) ** 2 == pos.shape[1]:
        # a square count has no class slot (1 + n * n is never a square for n > 0)
        out['pos_embed'] = torch.cat([pos.new_zeros(1, 1, pos.shape[2]), pos], dim=1)
    return out


CONVERTERS: Dict[str, Callable[[StateDict], StateDict]] = {
    'official': lambda sd: from_official(_drop_heads(sd)),
    'official_training': from_official_training,
    'hf_vit': from_hf_vit,
    'hf_dinov2': from_hf_dinov2,
    'hf_dinov3': from_hf_dinov3,
    'hf_dinov3_convnext': from_hf_convnext,
    'timm': from_timm,
}


def fit_to_model(sd: StateDict, expected: StateDict) -> StateDict:
    """Reconcile conventions that only the target model can decide.

    * ``mask_token`` is training-only; files that omit it (timm, DINOv1-style) get the official
      zero init.
    * RoPE ``periods`` are derived from the architecture; files that omit them (Hugging Face)
      get the model's own.
    * A qkv bias without ``bias_mask`` (Hugging Face files, whose key bias is absent and thus
      zero; official models built without the mask) was used as stored: its mask is all ones.
    * timm's ``mlp.fc1/fc2`` on a packed-SwiGLU target are ``mlp.w12/w3``.
    """
    sd = dict(sd)
    for key in ('mask_token', 'rope_embed.periods'):
        if key in expected and key not in sd:
            sd[key] = expected[key].clone() if key != 'mask_token' else \
                torch.zeros_like(expected[key])
    for key in expected:
        if key.endswith('.qkv.bias_mask') and key not in sd and key[:-len('_mask')] in sd:
            sd[key] = torch.ones_like(expected[key])
    if any('.mlp.w12.' in k for k in expected):
        sd = {re.sub(r'\.mlp\.fc1\.', '.mlp.w12.', re.sub(r'\.mlp\.fc2\.', '.mlp.w3.', k)): v
              for k, v in sd.items()}
    return sd


def to_densedino(sd: StateDict, fmt: Optional[str] = None) -> Tuple[StateDict, str]:
    """Convert ``sd`` to densedino keys; returns the state dict and the format it came in."""
    fmt = fmt or detect_format(sd)
    if fmt not in CONVERTERS:
        sample = ', '.join(list(sd)[:4])
        raise ValueError(f'unrecognised checkpoint layout (first keys: {sample})')
    return CONVERTERS[fmt](sd), fmt
