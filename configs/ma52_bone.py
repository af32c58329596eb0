# MMN on MA-52, bone stream, with the released recipe (see _base_.py).
# Data: the authors' release, {split}_data.pkl + {split}_label.pkl under data/MA52
# (see docs/data-formats.md); paths are relative to the directory you run from.
_base_ = ['./_base_.py']

dataset = 'ma52'
layout = 'ma52_44'
modality = 'bone'
num_classes = 52
data = dict(format='authors', root='data/MA52',
            train=dict(split='train'), val=dict(split='val'), test=dict(split='test'))
