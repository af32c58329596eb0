"""Draw the 44-joint MA-52 skeleton with joint numbers and names (``docs/skeleton_44.png``).

``python -m pose.draw_layout [OUT.png]`` regenerates the figure. The person faces the viewer,
so the subject's left side is on the right of the picture (as in the videos). Bones and
colours come from :data:`core.layouts.MA52_44` (its ``bones`` and ``parts``).
"""
from __future__ import annotations

import sys
from pathlib import Path

from core.layouts import MA52_44, SkeletonLayout

# A front-view template (x: the subject's left is +x; y: down), in arbitrary units.
TEMPLATE_44: dict[int, tuple[float, float]] = {
    17: (0, 0), 0: (0, 31), 1: (7, 22), 2: (-7, 22), 3: (16, 25), 4: (-16, 25),
    26: (0, 25), 27: (0, 34), 28: (-13, 21), 29: (13, 21), 30: (0, 38), 31: (0, 44),
    18: (0, 55), 5: (22, 60), 6: (-22, 60), 7: (30, 95), 8: (-30, 95), 9: (35, 126), 10: (-35, 126),
    32: (37, 134), 33: (49, 145), 34: (45, 156), 35: (40, 159), 36: (35, 157), 37: (30, 152),
    38: (-37, 134), 39: (-49, 145), 40: (-45, 156), 41: (-40, 159), 42: (-35, 157), 43: (-30, 152),
    19: (0, 118), 11: (13, 118), 12: (-13, 118), 13: (15, 165), 14: (-15, 165),
    15: (16, 208), 16: (-16, 208), 24: (15, 216), 25: (-15, 216),
    20: (18, 229), 21: (-18, 229), 22: (27, 226), 23: (-27, 226),
}
PART_COLOURS = {"left arm": "#d62728", "right arm": "#1f77b4", "left leg": "#ff7f0e",
                "right leg": "#17becf", "face": "#2ca02c", "torso": "#7f7f7f"}


def draw_layout(path: str | Path = "docs/skeleton_44.png", layout: SkeletonLayout = MA52_44,
                dpi: int = 110) -> Path:
    """Write the skeleton drawing (body, face close-up and the name list) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if layout.num_joints != len(TEMPLATE_44):
        raise ValueError(f"no drawing template for layout {layout.name!r}")
    part = layout.part_of_joint()
    colour = [PART_COLOURS.get(p, "black") for p in part]
    fig = plt.figure(figsize=(13, 9.5))
    ax_body = fig.add_axes([0.01, 0.02, 0.40, 0.90])
    ax_face = fig.add_axes([0.40, 0.50, 0.25, 0.42])
    ax_hand = fig.add_axes([0.40, 0.02, 0.25, 0.42])
    ax_list = fig.add_axes([0.66, 0.01, 0.33, 0.93])
    fig.suptitle(f"{layout.name}: {layout.num_joints} joints (subject facing the viewer: "
                 f"their left is on the right)", fontsize=12, y=0.985)

    def panel(ax, joints, lim, label_size, title):
        for a, b in layout.bones:
            if a in joints and b in joints:
                (x1, y1), (x2, y2) = TEMPLATE_44[a], TEMPLATE_44[b]
                ax.plot([x1, x2], [y1, y2], "-", color=colour[a], lw=2, zorder=1)
        for j in joints:
            x, y = TEMPLATE_44[j]
            ax.scatter([x], [y], s=28, color=colour[j], zorder=2, edgecolor="black", linewidth=0.5)
            ax.annotate(str(j), (x, y), textcoords="offset points", xytext=(4, 3),
                        fontsize=label_size, zorder=3)
        ax.set_xlim(*lim[0])
        ax.set_ylim(lim[1][1], lim[1][0])
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])

    face = {0, 1, 2, 3, 4, 17, 26, 27, 28, 29, 30, 31}
    body = [j for j in range(layout.num_joints) if j not in face - {0, 17}]
    panel(ax_body, body, ((-60, 60), (-8, 238)), 8, "body (face joints: see close-up)")
    panel(ax_face, sorted(face | {18}), ((-22, 22), (-4, 58)), 9, "face close-up")
    panel(ax_hand, [9, 7, 32, 33, 34, 35, 36, 37], ((22, 56), (90, 164)), 9, "left hand close-up")
    ax_list.axis("off")
    y = 0.99
    for name, joints in layout.parts:
        ax_list.text(0.0, y, name, fontsize=10, weight="bold", color=PART_COLOURS.get(name, "black"),
                     transform=ax_list.transAxes, va="top")
        y -= 0.024
        for j in sorted(joints):
            ax_list.text(0.04, y, f"{j:>2}  {layout.joint_names[j]}", fontsize=9, family="monospace",
                         transform=ax_list.transAxes, va="top")
            y -= 0.0172
        y -= 0.006
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


if __name__ == "__main__":  # pragma: no cover
    print(draw_layout(sys.argv[1] if len(sys.argv) > 1 else "docs/skeleton_44.png"))
