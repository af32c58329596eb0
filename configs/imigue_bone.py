# MMN on iMiGUE, bone stream, with the released recipe (see _base_.py).
# Data: the authors' release, {split}_data.pkl + {split}_label.pkl under data/iMiGUE
# (see docs/data-formats.md); paths are relative to the directory you run from.
_base_ = ['./_base_.py']

dataset = 'imigue'
layout = 'imigue_22'
modality = 'bone'
num_classes = 32
data = dict(format='authors', root='data/iMiGUE',
            train=dict(split='train'), val=dict(split='val'), test=dict(split='test'))
