# DINOv3-style recipe for ViT-S/16 (docs/pretraining.md, "Recipes" and "Gram anchoring"; not
# the 7B schedule): RoPE backbone, separate DINO and iBOT heads, Sinkhorn-Knopp centering, KoLeo,
# and Gram anchoring in a last refinement phase: from gram_start_iter a frozen Gram teacher (the
# EMA teacher then, refreshed every 10k iterations) sees the global crops at 2x resolution and
# anchors the student's patch similarities, the weight ramping to 2.0. Global crops 256, local
# 112 (16x16 / 7x7 patch grids).
_base_ = ['./dinov2_vits14.py']
# 100 epochs of 1,250 iterations as the base (its schedule is computed there: change it there)
model = dict(
    arch='dinov3_vits16',
    # RoPE coordinates rescaled in training by a factor log-uniform in [1/2, 2], no shift or
    # jitter: DINOv3's training configs (pos_embed_rope_rescale_coords 2, shift/jitter null);
    # the teachers run in eval mode and see the plain coordinates
    backbone_overrides=dict(img_size=256, rope_rescale_coords=2.0),
    drop_path_rate=0.1,
    ibot_head=dict(_delete_=True, n_prototypes=65536, hidden_dim=2048, bottleneck_dim=256,
                   n_layers=3),
    centering='sinkhorn',
    dino_loss_normalization='pairs',  # DINOv3's mean over pairs (= DINOv2's with local crops)
    gram_loss_weight=2.0, gram_start_iter=100_000, gram_warmup_iters=2_500,  # epoch 80, 2 epochs
    gram_update_interval=10_000,
    # Gram matrices per crop with the negative similarities kept, as DINOv3's released ViT-7B
    # Gram-anchoring config runs it (img_level true, remove_neg false)
    gram_batch=False, gram_remove_negatives=False)
train_dataloader = dict(
    dataset=dict(transform=dict(global_size=256, local_size=112, gram_size=512)),
    collate_fn=dict(patch_size=16))
