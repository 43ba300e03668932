"""One Vision Transformer for every DINO family (DINOv1, DINOv2, DINOv2 + registers, DINOv3).

Parameter names follow the official torch-hub checkpoints, so their state dicts load as they are
(DINOv3's ``storage_tokens`` are called ``register_tokens`` here; see ``convert.py``).
The family differences are options, set per hub name in ``presets.py``:

==================  =========  ==========  ============  ==================================
family              positions  registers   LayerScale    interpolation / norm eps
==================  =========  ==========  ============  ==================================
DINOv1              absolute   0           no            scale_factor (+0.1 offset) / 1e-6
DINOv2              absolute   0           yes           scale_factor (+0.1 offset) / 1e-6
DINOv2 + registers  absolute   4           yes           size + antialias / 1e-6
DINOv3              RoPE       4 storage   yes           (patch tokens only) / 1e-5
==================  =========  ==========  ============  ==================================
"""
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..layers import (Block, Mlp, PatchEmbed, RopePositionEmbedding, SwiGLU, SwiGLUPacked,
                      drop_path_rates, resample_abs_pos_embed, swiglu_hidden_dim)
from ..layers.attention import Rope

FFN_LAYERS = {'mlp': Mlp, 'swiglu_packed': SwiGLUPacked, 'swiglu': SwiGLU}
POS_EMBEDS = ('absolute', 'rope')


def _check_options(ffn_layer: str, pos_embed: str, depth: int, rope_aug: dict) -> None:
    """One-line errors for constructor options that no DINO model has."""
    if ffn_layer not in FFN_LAYERS:
        raise ValueError(f'ffn_layer must be one of {sorted(FFN_LAYERS)}, got {ffn_layer!r}')
    if pos_embed not in POS_EMBEDS:
        raise ValueError(f'pos_embed must be one of {POS_EMBEDS}, got {pos_embed!r}')
    if depth < 1:
        raise ValueError(f'depth must be >= 1, got {depth}')
    if pos_embed == 'absolute' and any(v is not None for v in rope_aug.values()):
        raise ValueError(f'RoPE coordinate augmentations need pos_embed="rope", got {rope_aug} '
                         f'with pos_embed={pos_embed!r}')


class DinoVisionTransformer(nn.Module):
    """DINO ViT with the official methods (`forward_features`, `get_intermediate_layers`, ...).

    Args:
        patch_size: Patch side p in pixels.
        embed_dim: Token width D.
        depth: Number of blocks.
        num_heads: Attention heads.
        ffn_layer: 'mlp' (GELU), 'swiglu_packed' (DINOv2 ViT-g, keys w12/w3) or 'swiglu'
            (DINOv3, keys w1/w2/w3).
        ffn_ratio: Hidden width of the FFN as a multiple of D (before the SwiGLU 2/3 rule).
        ffn_align: Rounding of the SwiGLU hidden width (8, or 64 for DINOv3 ViT-7B).
        qkv_bias: Bias on qkv projections. RoPE models (DINOv3) multiply it by a per-block
            ``attn.qkv.bias_mask`` buffer, loaded from their files (default: key third zero).
        proj_bias: Bias on attention output projections.
        ffn_bias: Bias in the FFN.
        layerscale_init: LayerScale init, or None for none (DINOv1).
        norm_eps: LayerNorm epsilon.
        num_register_tokens: Register (DINOv2) / storage (DINOv3) tokens.
        pos_embed: 'absolute' (learned, resampled) or 'rope' (DINOv3).
        img_size: Resolution the absolute position grid was trained for (grid = img_size / p).
        interpolate_offset: The +0.1 of DINOv1/DINOv2's resampling; 0 asks for the size directly.
        interpolate_antialias: Antialiased resampling (DINOv2 with registers).
        rope_base: RoPE period base.
        rope_shift_coords: DINOv3's training-time RoPE coordinate shift (None: off); see
            :class:`~densedino.models.layers.RopePositionEmbedding`. Needs ``pos_embed='rope'``.
        rope_jitter_coords: Training-time per-axis coordinate jitter (None: off).
        rope_rescale_coords: Training-time common coordinate rescale (None: off; DINOv3's
            training configs: 2). The three act in training mode only.
        mask_token: Whether the model holds a ``mask_token`` (DINOv2/v3; used by masked training).
        untie_cls_norm: Separate final norm ``cls_norm`` for class/register tokens.
        drop_path_rate: Stochastic depth rate (training only).
        drop_path_uniform: The same rate in every block (DINOv2, DINOv3); False: rising linearly
            from 0 in the first block to ``drop_path_rate`` in the last (DINOv1).
        in_chans: Input channels.
        grad_checkpointing: Recompute each block's activations in the backward instead of
            keeping them (``set_grad_checkpointing``): for partly unfrozen backbones and
            pretraining of large models. Not an architecture choice: weights are unaffected.
    """

    def __init__(self, *, patch_size: int = 14, embed_dim: int = 384, depth: int = 12,
                 num_heads: int = 6, ffn_layer: str = 'mlp', ffn_ratio: float = 4.0,
                 ffn_align: int = 8, qkv_bias: bool = True, proj_bias: bool = True,
                 ffn_bias: bool = True, layerscale_init: Optional[float] = None,
                 norm_eps: float = 1e-6, num_register_tokens: int = 0,
                 pos_embed: str = 'absolute', img_size: int = 224,
                 interpolate_offset: float = 0.1, interpolate_antialias: bool = False,
                 rope_base: float = 100.0, rope_shift_coords: Optional[float] = None,
                 rope_jitter_coords: Optional[float] = None,
                 rope_rescale_coords: Optional[float] = None, mask_token: bool = True,
                 untie_cls_norm: bool = False, drop_path_rate: float = 0.0,
                 drop_path_uniform: bool = True, in_chans: int = 3,
                 grad_checkpointing: bool = False) -> None:
        super().__init__()
        rope_aug = dict(shift_coords=rope_shift_coords, jitter_coords=rope_jitter_coords,
                        rescale_coords=rope_rescale_coords)
        _check_options(ffn_layer, pos_embed, depth, rope_aug)
        self.patch_size = patch_size
        self.embed_dim = self.num_features = embed_dim
        self.n_blocks = depth
        self.num_heads = num_heads
        self.num_register_tokens = num_register_tokens
        self.num_prefix_tokens = 1 + num_register_tokens
        self.interpolate_offset = interpolate_offset
        self.interpolate_antialias = interpolate_antialias

        self.patch_embed = PatchEmbed(patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if pos_embed == 'absolute':
            grid = img_size // patch_size
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
            self.rope_embed = None
        else:
            self.pos_embed = None
            self.rope_embed = RopePositionEmbedding(head_dim=embed_dim // num_heads,
                                                    base=rope_base, **rope_aug)
        if num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        if mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))

        hidden = int(embed_dim * ffn_ratio)
        if ffn_layer != 'mlp':
            hidden = swiglu_hidden_dim(hidden, ffn_align)
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp=FFN_LAYERS[ffn_layer](embed_dim, hidden, bias=ffn_bias),
                  norm_eps=norm_eps, layerscale_init=layerscale_init, qkv_bias=qkv_bias,
                  proj_bias=proj_bias, mask_k_bias=pos_embed == 'rope', drop_path=rate)
            for rate in drop_path_rates(drop_path_rate, depth, drop_path_uniform)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.cls_norm = nn.LayerNorm(embed_dim, eps=norm_eps) if untie_cls_norm else None
        self.init_weights()
        self.set_grad_checkpointing(grad_checkpointing)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing per block (see :class:`~densedino.models.layers.Block`):
        applies wherever the blocks run with autograd, whichever method calls them."""
        for blk in self.blocks:
            blk.grad_checkpointing = bool(enable)

    def compile_blocks(self, **options) -> None:
        """``torch.compile`` every block in place (``nn.Module.compile``: the state dict keeps
        its keys). The blocks share one structure, so they share the compiled code; token
        counts that change (slide windows, frames of another size) are compiled once more and
        then treated as dynamic by torch's automatic dynamic shapes, not recompiled per input.
        ``options`` go to ``torch.compile`` (e.g. ``mode='max-autotune'``)."""
        for blk in self.blocks:
            blk.compile(**options)

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """Random init as in the official code (truncated normal 0.02, zero biases)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6 if self.pos_embed is not None else 0.02)
        if self.num_register_tokens:
            nn.init.normal_(self.register_tokens, std=1e-6)

    # ---------------------------------------------------------------- tokens
    def interpolate_pos_encoding(self, grid_hw: Tuple[int, int], image_hw: Tuple[int, int],
                                 dtype: torch.dtype) -> torch.Tensor:
        """Class + patch position embeddings (1, 1 + h * w, D) for a token grid ``grid_hw``."""
        n = self.pos_embed.shape[1] - 1
        h, w = grid_hw
        # The official models skip resampling only for square images of the trained grid.
        if h * w == n and image_hw[0] == image_hw[1]:
            return self.pos_embed.to(dtype)
        patch_pos = resample_abs_pos_embed(self.pos_embed[:, 1:], grid_hw,
                                           offset=self.interpolate_offset,
                                           antialias=self.interpolate_antialias)
        return torch.cat([self.pos_embed[:, :1].float(), patch_pos], dim=1).to(dtype)

    def prepare_tokens(self, x: torch.Tensor, masks: Optional[torch.Tensor] = None
                       ) -> Tuple[torch.Tensor, Optional[Rope], Tuple[int, int]]:
        """Embed an image batch.

        Args:
            x: (B, C, H, W) with H, W multiples of the patch size.
            masks: Optional (B, h * w) bool, True where a patch is replaced by the mask token.

        Returns:
            Tokens (B, 1 + R + h * w, D) ordered [cls, registers, patches], the RoPE (sin, cos)
            for the patches or None, and the grid (h, w).
        """
        B = x.shape[0]
        patches = self.patch_embed(x)
        h, w = patches.shape[1:3]
        tokens = patches.flatten(1, 2)
        if masks is not None:
            tokens = torch.where(masks.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)
        cls = self.cls_token.expand(B, -1, -1).to(tokens.dtype)
        regs = self.register_tokens.expand(B, -1, -1).to(tokens.dtype) \
            if self.num_register_tokens else tokens[:, :0]
        if self.pos_embed is not None:
            # Positions are added before the registers go in: registers carry no position.
            tokens = torch.cat([cls, tokens], dim=1)
            tokens = tokens + self.interpolate_pos_encoding((h, w), x.shape[-2:], tokens.dtype)
            tokens = torch.cat([tokens[:, :1], regs, tokens[:, 1:]], dim=1)
            return tokens, None, (h, w)
        return torch.cat([cls, regs, tokens], dim=1), self.rope_embed(h, w), (h, w)

    def iter_blocks(self, x: torch.Tensor, masks: Optional[torch.Tensor] = None,
                    stop: Optional[int] = None) -> Iterator[Tuple[int, torch.Tensor]]:
        """Yield (block index, output tokens) for blocks 0 .. ``stop`` - 1 (all by default)."""
        tokens, rope, _ = self.prepare_tokens(x, masks)
        for i, blk in enumerate(self.blocks[:stop]):
            tokens = blk(tokens, rope)
            yield i, tokens

    def apply_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        """Final norm of (B, N, D) tokens (with ``cls_norm`` on prefix tokens when untied)."""
        if self.cls_norm is None:
            return self.norm(tokens)
        p = self.num_prefix_tokens
        return torch.cat([self.cls_norm(tokens[:, :p]), self.norm(tokens[:, p:])], dim=1)

    # --------------------------------------------------------- official API
    def forward_features(self, x: torch.Tensor,
                         masks: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Official-compatible features of the last block.

        Returns:
            dict with ``x_norm_clstoken`` (B, D), ``x_norm_regtokens`` (B, R, D),
            ``x_norm_patchtokens`` (B, h * w, D), ``x_prenorm`` (B, 1 + R + h * w, D), ``masks``;
            RoPE models also carry the DINOv3 name ``x_storage_tokens``.
        """
        for _, tokens in self.iter_blocks(x, masks):  # keep only the last block's output
            pass
        normed = self.apply_norm(tokens)
        p = self.num_prefix_tokens
        out = {
            'x_norm_clstoken': normed[:, 0],
            'x_norm_regtokens': normed[:, 1:p],
            'x_norm_patchtokens': normed[:, p:],
            'x_prenorm': tokens,
            'masks': masks,
        }
        if self.rope_embed is not None:
            out['x_storage_tokens'] = out['x_norm_regtokens']
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised class token (B, D), like the official hub models."""
        return self.forward_features(x)['x_norm_clstoken']

    def resolve_blocks(self, n: Union[int, Sequence[int]]) -> List[int]:
        """Official meaning of ``n``: an int takes the last n blocks, a sequence names blocks."""
        if isinstance(n, int):
            if not 1 <= n <= self.n_blocks:
                raise ValueError(f'n={n} blocks requested from a {self.n_blocks}-block model')
            return list(range(self.n_blocks - n, self.n_blocks))
        idx = [int(i) for i in n]
        bad = [i for i in idx if not 0 <= i < self.n_blocks]
        if bad:
            raise ValueError(f'block indices {bad} out of range for {self.n_blocks} blocks')
        return idx

    def get_intermediate_layers(self, x: torch.Tensor, n: Union[int, Sequence[int]] = 1,
                                reshape: bool = False, return_class_token: bool = False,
                                norm: bool = True, *, return_extra_tokens: bool = False
                                ) -> tuple:
        """Patch tokens of selected blocks, as in DINOv2/DINOv3.

        ``norm`` stays the fifth positional argument as in DINOv2; DINOv3 passes every option
        by keyword, so ``return_extra_tokens`` is keyword-only.

        Args:
            x: (B, C, H, W) images, H and W multiples of the patch size.
            n: The last n blocks (int) or block indices (sequence).
            reshape: Patch tokens as maps (B, D, h, w) instead of (B, h * w, D).
            return_class_token: Add each block's class token (B, D).
            norm: Apply the final norm (``cls_norm`` to class and extra tokens when untied).
            return_extra_tokens: Add each block's register / storage tokens (B, R, D) (DINOv3).

        Returns:
            A tuple with one entry per selected block (in block order): the patch tokens alone,
            or a tuple (patches, class) / (patches, extra) / (patches, class, extra) as the
            flags ask, like the official DINOv3 method.
        """
        wanted = self.resolve_blocks(n)
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        taps = {i: t for i, t in self.iter_blocks(x, stop=max(wanted) + 1) if i in wanted}
        outputs = []
        for i in wanted:
            t = self.apply_norm(taps[i]) if norm else taps[i]
            patches = t[:, self.num_prefix_tokens:]
            if reshape:
                patches = patches.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()
            extra = t[:, 1:self.num_prefix_tokens]
            parts = (patches,) + ((t[:, 0],) if return_class_token else ()) + \
                ((extra,) if return_extra_tokens else ())
            outputs.append(parts if len(parts) > 1 else patches)
        return tuple(outputs)

    def get_last_selfattention(self, x: torch.Tensor,
                               n_queries: Optional[int] = None) -> torch.Tensor:
        """DINOv1's attention of the last block, (B, heads, N, N) with N = 1 + R + h * w;
        ``n_queries=Q``: the first Q query rows only, (B, heads, Q, N)."""
        tokens, rope, _ = self.prepare_tokens(x)
        for blk in self.blocks[:-1]:
            tokens = blk(tokens, rope)
        return self.blocks[-1].attention_map(tokens, rope, n_queries=n_queries)
