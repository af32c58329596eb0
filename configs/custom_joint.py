# MMN on your own coding scheme: a pyskl file of 44-joint skeletons cut from interview videos
# (python -m pipelines.build_dataset), joint stream. Nothing here needs editing:
#
#   python -m mmn.train configs/custom_joint.py --data DATA.pkl [--epochs N] [--init-from MA52_J.pt] --work-dir DIR
#
# --data sets data.path; the file's label_names give the class list and num_classes, and the
# trained mmn_best.pt / mmn_last.pt carry them, so `python -m pipelines.video_to_labels
# --weights DIR/mmn_best.pt` and the app label videos with your names (no MA-52 codes or body
# levels: your scheme has none). --init-from starts from a released or trained MMN checkpoint
# (backbone loaded, head re-initialised for your classes) instead of random weights.
_base_ = ['./_base_.py']

# The name your taxonomy gets in the checkpoints and the labels documents; any name but the
# built-in 'ma52' / 'imigue' (those would bring MA-52's codes and body levels with them).
dataset = 'custom'
# The 44-joint MA-52 skeleton the video pipeline (pose.extract) writes, in MA-52's joint order,
# so the released MA-52 checkpoints can start the training (--init-from).
layout = 'ma52_44'
modality = 'joint'
# None: the length of the data file's label_names (mmn.training.engine.load_config); set it
# (--cfg-options num_classes=K) only for a file without label_names.
num_classes = None
# build_dataset's file: one pickle with splits 'train' and 'val'; path comes from --data (or
# --cfg-options data.path=...). mmn.test's default split 'test' reads 'val' here.
data = dict(format='pyskl', path=None,
            train=dict(split='train'), val=dict(split='val'), test=dict(split='val'))

# model and clip_len stay the released ones (_base_.py: 96 channels, depths 3-3-3-3, 64 frames):
# a released checkpoint only loads into the same architecture.

# The project's small-set recipe (configs/msr_action3d_joint.py: 291 training clips, 83% Top-1
# on MSR Action3D), since a lab's own coded set is small too: the faithful STCA augmentation
# at p=0.5 (the released recipe's 0.2 was set for MA-52's far larger training split), without
# the released masking augmentations (axis_mask, block_dropout), as in that recipe.
augment = dict(p=0.5, axis_mask=False, block_dropout=False)
# 40 epochs with a 3-epoch warm-up (the released 20 of 120 would spend a sixth of a short run
# warming up), batches of 16 so that a small training split still gives many updates per
# epoch; AdamW 1e-3, cosine to 1e-5, weight decay 0.1, label smoothing 0.1 as released.
# Validate every epoch: the val split is small, and mmn_best.pt is picked from these passes.
train = dict(epochs=40, batch_size=16, lr=1e-3, warmup_epochs=3, val_interval=1)
# Two loader workers overlap data preparation with a GPU step; on a CPU-only machine
# --cfg-options loader.num_workers=0 leaves the cores to the model.
loader = dict(num_workers=2, val_batch_size=64)
# mmengine resume points every 5 epochs, only the latest kept (mmn_last.pt is written every epoch).
checkpoint = dict(interval=5, max_keep=1)
log_interval = 10
