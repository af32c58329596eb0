"""Skeleton layouts as data: joint names, bones, the centre joint and MMN's body-part order.

A :class:`SkeletonLayout` is everything the rest of the project needs to know about a joint
set: MMN's preprocessing centres on ``centre_joint``, builds the bone modality from ``bones``
(in list order) and reorders joints into ``partition``; the renderers draw ``bones`` and label
heatmap rows with ``joint_names`` grouped by ``parts``.

Layouts shipped here:

- :data:`MA52_44`: the 44-joint MA-52 skeleton (AlphaPose Halpe-136 cut down; see
  ``docs/skeleton-layout.md`` in the shared reference). Sides are the subject's own.
- :data:`IMIGUE_22`: the 22-joint OpenPose-derived iMiGUE release.
- :data:`MSR_ACTION3D_20`: Kinect v1 joints of MSR Action3D (the pyskl fixture).

User-defined layouts come from a mapping with the same fields (:meth:`SkeletonLayout.from_dict`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SkeletonLayout:
    """A joint set and how MMN reads it.

    Attributes:
        name: short identifier stored in checkpoints and skeleton files (e.g. ``"ma52_44"``).
        joint_names: one name per joint, in storage order (index = joint id).
        bones: ``(a, b)`` pairs; the bone modality sets ``bone[a] = joint[a] - joint[b]`` in
            list order, so a joint that starts several bones keeps the last one.
        centre_joint: joint subtracted (from frame 0) when centring a clip.
        parts: ``(part name, joint ids)`` in MMN's body-part order; their concatenation is
            the model's joint order and must be a permutation of all joints.
    """

    name: str
    joint_names: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    centre_joint: int
    parts: tuple[tuple[str, tuple[int, ...]], ...]
    partition: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        v = len(self.joint_names)
        partition = tuple(j for _, joints in self.parts for j in joints)
        if sorted(partition) != list(range(v)):
            raise ValueError(f"layout {self.name!r}: parts must cover joints 0..{v - 1} exactly once, "
                             f"got {sorted(partition)}")
        for a, b in self.bones:
            if not (0 <= a < v and 0 <= b < v) or a == b:
                raise ValueError(f"layout {self.name!r}: bad bone ({a}, {b}) for {v} joints")
        if not 0 <= self.centre_joint < v:
            raise ValueError(f"layout {self.name!r}: centre joint {self.centre_joint} out of range")
        object.__setattr__(self, "partition", partition)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def part_of_joint(self) -> list[str]:
        """Name of the body part of each joint, in storage order."""
        out = [""] * self.num_joints
        for part, joints in self.parts:
            for j in joints:
                out[j] = part
        return out

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SkeletonLayout:
        """Build a layout from a config mapping with keys ``name``, ``joint_names`` (or
        ``num_joints``), ``bones``, ``centre_joint`` and ``parts`` (mapping or list of pairs)."""
        names = spec.get("joint_names") or [f"joint_{i}" for i in range(int(spec["num_joints"]))]
        parts = spec["parts"]
        if isinstance(parts, Mapping):
            parts = list(parts.items())
        return cls(
            name=str(spec["name"]),
            joint_names=tuple(names),
            bones=tuple((int(a), int(b)) for a, b in spec["bones"]),
            centre_joint=int(spec["centre_joint"]),
            parts=tuple((str(p), tuple(int(j) for j in js)) for p, js in parts),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, the inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "bones": [list(b) for b in self.bones],
            "centre_joint": self.centre_joint,
            "parts": [[p, list(js)] for p, js in self.parts],
        }


def _bones(*groups: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple(b for g in groups for b in g)


MA52_44 = SkeletonLayout(
    name="ma52_44",
    joint_names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
        "head_top", "neck", "hip_centre",
        "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
        "left_heel", "right_heel",
        "nose_bridge", "nose_base", "right_eye_outer", "left_eye_outer",
        "upper_lip", "lower_lip",
        "left_hand_root", "left_thumb_tip", "left_index_tip", "left_middle_tip",
        "left_ring_tip", "left_little_tip",
        "right_hand_root", "right_thumb_tip", "right_index_tip", "right_middle_tip",
        "right_ring_tip", "right_little_tip",
    ),
    # Bone order matters for the bone modality (released code's order).
    bones=_bones(
        [(7, 9), (9, 32), (32, 33), (32, 34), (32, 35), (32, 36), (32, 37)],
        [(8, 10), (10, 38), (38, 39), (38, 40), (38, 41), (38, 42), (38, 43)],
        [(13, 15), (15, 24), (24, 20), (24, 22)],
        [(14, 16), (16, 25), (25, 21), (25, 23)],
        [(31, 30), (30, 27), (27, 0), (0, 26), (26, 1), (1, 29), (29, 3), (26, 2), (2, 28), (28, 4)],
        [(17, 18), (18, 5), (18, 6), (18, 19), (19, 11), (19, 12)],
        [(5, 7), (6, 8), (11, 13), (12, 14), (0, 18), (0, 17)],
    ),
    centre_joint=19,
    parts=(
        ("left arm", (7, 9, 32, 33, 34, 35, 36, 37)),
        ("right arm", (8, 10, 38, 39, 40, 41, 42, 43)),
        ("left leg", (13, 15, 24, 22, 20)),
        ("right leg", (14, 16, 25, 23, 21)),
        ("face", (31, 30, 27, 0, 26, 1, 29, 3, 2, 28, 4)),
        ("torso", (17, 18, 5, 6, 19, 11, 12)),
    ),
)

IMIGUE_22 = SkeletonLayout(
    name="imigue_22",
    joint_names=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist",
        "right_eye", "left_eye", "right_ear", "left_ear",
        "right_thumb_tip", "right_index_tip", "right_middle_tip", "right_ring_tip", "right_little_tip",
        "left_thumb_tip", "left_index_tip", "left_middle_tip", "left_ring_tip", "left_little_tip",
    ),
    bones=((1, 0), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (0, 8), (8, 10), (0, 9), (9, 11),
           (4, 12), (4, 13), (4, 14), (4, 15), (4, 16), (7, 17), (7, 18), (7, 19), (7, 20), (7, 21)),
    centre_joint=1,
    parts=(
        ("right hand", (4, 12, 13, 14, 15, 16)),
        ("left hand", (7, 17, 18, 19, 20, 21)),
        ("head", (0, 8, 9, 10, 11)),
        ("arms", (1, 2, 5, 3, 6)),
    ),
)

MSR_ACTION3D_20 = SkeletonLayout(
    name="msr_action3d_20",
    joint_names=(
        "right_shoulder", "left_shoulder", "neck", "spine", "right_hip", "left_hip", "hip_centre",
        "right_elbow", "left_elbow", "right_wrist", "left_wrist", "right_hand", "left_hand",
        "right_knee", "left_knee", "right_ankle", "left_ankle", "right_foot", "left_foot", "head",
    ),
    bones=((19, 2), (0, 2), (1, 2), (3, 2), (6, 3), (4, 6), (5, 6),
           (7, 0), (9, 7), (11, 9), (8, 1), (10, 8), (12, 10),
           (13, 4), (15, 13), (17, 15), (14, 5), (16, 14), (18, 16)),
    centre_joint=6,
    parts=(
        ("right arm", (0, 7, 9, 11)),
        ("left arm", (1, 8, 10, 12)),
        ("right leg", (4, 13, 15, 17)),
        ("left leg", (5, 14, 16, 18)),
        ("trunk", (19, 2, 3, 6)),
    ),
)

LAYOUTS: dict[str, SkeletonLayout] = {l.name: l for l in (MA52_44, IMIGUE_22, MSR_ACTION3D_20)}


def layout_for_joints(num_joints: int) -> SkeletonLayout:
    """The shipped layout with ``num_joints`` joints (44 → MA-52, 22 → iMiGUE, 20 → MSR)."""
    for layout in LAYOUTS.values():
        if layout.num_joints == num_joints:
            return layout
    raise ValueError(f"no shipped skeleton layout has {num_joints} joints "
                     f"(known: {', '.join(f'{l.name}={l.num_joints}' for l in LAYOUTS.values())})")
