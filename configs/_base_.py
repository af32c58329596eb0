# The released MMN training recipe (docs/mmn-computation.md §8), shared by every experiment.
# Dataset configs set: dataset, layout, modality, num_classes, data (and may override any key).

# MMNConfig overrides (joints and classes come from the layout and num_classes)
model = dict(depths=(3, 3, 3, 3), channels=96, num_heads=4, kernel_size=3, mlp_ratio=2,
             head_drop=0.1, drop_path=0.3)
clip_len = 64

# STCA at p=0.2 is mmn.training.augment.AUGMENT_DEFAULTS (configs list only what they change);
# the released recipe adds the released code's masking augmentations, which did reach its model.
augment = dict(axis_mask=True, block_dropout=True)

# AdamW, 20 warm-up epochs from 1e-7, then cosine to 1e-5; label smoothing 0.1; AMP on GPU.
# batch_size is per process (one GPU: the released 64; with torchrun the effective batch is 64 × N).
train = dict(epochs=120, batch_size=64, lr=1e-3, min_lr=1e-5, warmup_lr=1e-7, warmup_epochs=20,
             weight_decay=0.1, label_smoothing=0.1, grad_clip=None, amp=True, drop_last=True,
             val_interval=1)
loader = dict(num_workers=4, val_batch_size=64)
checkpoint = dict(interval=1, max_keep=2)  # mmengine resume checkpoints (epoch_*.pth)
log_interval = 50
seed = 1
threads = None  # CPU threads per process; None = cores / processes
work_root = 'work_dirs'
