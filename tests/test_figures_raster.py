"""The per-video pictures drawn straight into pixels (pipelines.drawing.raster): they say the same
as the matplotlib figures: the hot joint's row and time, the row labels in the PNG, each body
level's colour where its segment is, the motion curve's peak where it happens."""
import cv2
import numpy as np
import pytest

from core.layouts import MA52_44
from pipelines.drawing import picture, raster
from pipelines.drawing.render import BODY_LEVEL_COLOURS_BGR

TURBO = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]  # RGB


def _where(img: np.ndarray, rgb, tol: int = 2) -> tuple[np.ndarray, np.ndarray]:
    return np.nonzero((np.abs(img.astype(int) - np.asarray(rgb, int)) <= tol).all(axis=-1))


def _plot_box(img: np.ndarray) -> tuple[int, int, int, int]:
    """The heat grid's extent: the rows with many pixels of the coldest colour (not the colour bar)."""
    cold = (np.abs(img.astype(int) - TURBO[0].astype(int)) <= 2).all(axis=-1)
    rows = np.flatnonzero(cold.sum(axis=1) > 100)
    xs = np.flatnonzero(cold[rows].any(axis=0))
    return xs.min(), rows.min(), xs.max() + 1, rows.max() + 1


def test_heatmap_puts_the_hot_joint_in_its_row_and_time():
    order, groups = picture.grouped_joint_order(MA52_44)
    nose = MA52_44.joint_names.index("nose")
    heat = np.zeros((30, MA52_44.num_joints), np.float32)
    heat[10:20, nose] = 1.0  # frames 10-19 of 30 at 30 fps: 1/3 to 2/3 of the time axis
    pic = raster.joint_heatmap(heat, fps=30.0, vmax=1.0, title="nose only")
    img = pic.array()
    assert img.shape == (pic.height, pic.width, 3) and pic.height > 600 and pic.width == 720
    x0, y0, x1, y1 = _plot_box(img)
    ys, xs = _where(img, TURBO[255])
    ys, xs = ys[(xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)], xs[(xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)]
    row = order.index(nose)
    row_h = (y1 - y0) / MA52_44.num_joints
    assert ys.size and abs(ys.min() - (y0 + row * row_h)) <= 2 and abs(ys.max() + 1 - (y0 + (row + 1) * row_h)) <= 2
    assert abs(xs.min() - (x0 + (x1 - x0) / 3)) <= 2 and abs(xs.max() + 1 - (x0 + 2 * (x1 - x0) / 3)) <= 2
    # labels, top to bottom, in the picture and in its PNG text chunk (for API clients)
    expected = [MA52_44.joint_names[j] for j in order]
    assert list(pic.row_labels) == expected and picture.read_row_labels(pic.png) == expected
    assert pic.png.startswith(b"\x89PNG") and cv2.imdecode(np.frombuffer(pic.png, np.uint8), cv2.IMREAD_COLOR) is not None


def test_heatmap_scale_and_wrong_joint_count():
    heat = np.full((12, MA52_44.num_joints), 0.5, np.float32)
    img = raster.joint_heatmap(heat, fps=30.0, vmax=1.0).array()
    x0, y0, x1, y1 = _plot_box(raster.joint_heatmap(np.zeros_like(heat), fps=30.0, vmax=1.0).array())
    centre = img[(y0 + y1) // 2, (x0 + x1) // 2]
    assert np.abs(centre.astype(int) - TURBO[127].astype(int)).max() <= 2  # 0.5 of vmax: the map's middle
    with pytest.raises(ValueError, match="44"):
        raster.joint_heatmap(np.zeros((10, 17)), fps=30.0)


def _segment(code, body, start, end, prob=0.8):
    return {"class_index": 1, "name": "an action", "code": code, "body_code": body, "start_s": start, "end_s": end,
            "mean_prob": prob, "start_frame": int(30 * start), "end_frame": int(30 * end), "windows": [0]}


def test_timeline_colours_each_segment_by_its_body_level_and_draws_the_motion_peak():
    levels = [("A", "body"), ("B", "head")]
    segs = [_segment("A3", "A", 0.0, 2.0), _segment("B1", "B", 2.0, 4.0)]
    windows = [{"index": i, "start_s": 0.5 * i, "end_s": 0.5 * i + 2.0,
                "top_k": [{"index": 1, "prob": 0.9, "code": "A3", "body_code": "A" if i < 3 else "B"}]} for i in range(5)]
    energy = np.zeros(120)
    energy[90] = 5.0  # a single peak, in frame 90: centred at 90.5 / 30 s
    pic = raster.timeline(4.0, segs, windows, energy, 30.0, body_levels=levels, marker_s=1.0)
    img = pic.array()
    assert pic.width == 1200 and pic.png.startswith(b"\x89PNG")
    body_a, body_b = (BODY_LEVEL_COLOURS_BGR[i][::-1] for i in (0, 1))
    ya, xa = _where(img, body_a, 0)
    yb, xb = _where(img, body_b, 0)
    assert xa.size > 1000 and xb.size > 1000
    mid = 110 + (1200 - 12 - 110) / 2  # the plot's x range (0 s … 4 s) and its middle at 2 s
    big_a, big_b = xa[ya > 80], xb[yb > 80]  # the bars, not the legend
    assert big_a.max() <= mid + 2 and big_b.min() >= mid - 2
    # the skeleton-motion curve (dark grey, third panel, below 4 rows of windows) peaks at frame 90
    ys, xs = _where(img, (64, 64, 64), 20)
    top = 72 + 125 + 12 + (35 + 12 * 4) + 12
    panel = (ys >= top) & (ys < top + 80) & (xs > 112)
    peak_x = xs[panel][np.argmin(ys[panel])]
    assert abs(peak_x - (110 + 90.5 / 30 / 4.0 * (1200 - 12 - 110))) <= 3


def test_timeline_without_labels_shows_the_note_and_the_pixel_motion_parts():
    energy = np.abs(np.sin(np.linspace(0, 6, 60)))
    parts = {name: np.linspace(0, i + 1, 60) for i, (name, _) in enumerate(MA52_44.parts)}
    parts["face"][:10] = np.nan  # no face in the first frames: a gap, not a zero
    plain = raster.timeline(2.0, [], [{"index": 0, "start_s": 0.0, "end_s": 2.0}], energy, 30.0, note="no labels")
    full = raster.timeline(2.0, [], [{"index": 0, "start_s": 0.0, "end_s": 2.0}], energy, 30.0, note="no labels",
                           region_motion=parts)
    assert full.height > plain.height  # the fourth panel
    img = full.array()
    for i in range(len(MA52_44.parts)):
        assert _where(img, raster.PART_COLOURS_RGB[i], 0)[0].size > 20, MA52_44.parts[i][0]


def test_png_text_chunks_and_ticks():
    img = np.zeros((5, 7, 3), np.uint8)
    img[1, 2] = (255, 0, 0)
    png = raster.png_bytes(img, {"k": '["a", "b"]'})
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        assert im.info["k"] == '["a", "b"]' and np.array_equal(np.asarray(im.convert("RGB")), img)
    assert raster.nice_ticks(0.0, 1.566, 8) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    assert raster.nice_ticks(0.5, 10.0, 6) == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert raster.nice_ticks(3.0, 3.0) == [3.0]
