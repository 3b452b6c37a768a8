"""Proposals of the 2017 paper (sec. 4): grid boxes over the image, fixed-step segments over the
caption, and the linear RoI pooling that embeds every box from one cached conv map.

Boxes are fractions of the image (x0, y0, x1, y1 in [0, 1]) whose sides lie on the lines of a
grid x grid grid; segments are [start, end) in 10 ms feature frames."""
import numpy as np

EPS = 1e-9


def grid_boxes(grid=10, min_side=0.3, min_aspect=2 / 3, max_aspect=3 / 2, image_aspect=1.0):
    """Every box whose sides lie on grid lines, with width and height >= min_side of the image's and
    pixel aspect (box w / h on an image of aspect `image_aspect` = width / height) in [min_aspect,
    max_aspect].  Returns (N, 4) float64 fractions, sorted by x0, y0, x1, y1."""
    lines = np.arange(grid + 1)
    x0, x1, y0, y1 = np.meshgrid(lines, lines, lines, lines, indexing="ij")
    x0, x1, y0, y1 = (a.ravel() for a in (x0, x1, y0, y1))
    w, h = (x1 - x0) / grid, (y1 - y0) / grid
    aspect = w * image_aspect / np.maximum(h, EPS)
    keep = ((w >= min_side - EPS) & (h >= min_side - EPS)
            & (aspect >= min_aspect - EPS) & (aspect <= max_aspect + EPS))
    boxes = np.stack([x0, y0, x1, y1], 1)[keep] / grid
    return boxes[np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0]))]


def check_image_size(image_id, width, height, grid):
    """An image smaller than the grid cannot put its box sides on distinct pixel lines: an error."""
    if width < grid or height < grid:
        raise ValueError(f"image {image_id}: {width}x{height} px is smaller than the {grid}x{grid} "
                         f"box grid (patterns.boxes.grid)")


def roi_weights(boxes, rows, cols):
    """(N, rows * cols) float32 weights of exact area-weighted average pooling of a rows x cols map
    (cells of equal size covering the image) over each fractional box: the share of the box's area
    that lies in each cell.  Pooled features are weights @ cells (one GEMM for all boxes)."""
    b = np.asarray(boxes, np.float64)

    def axis(lo, hi, n):  # (N, n): overlap of [lo, hi] (in cells) with every cell [c, c + 1]
        c = np.arange(n)[None, :]
        ov = np.clip(np.minimum(hi[:, None] * n, c + 1) - np.maximum(lo[:, None] * n, c), 0, None)
        return ov / np.maximum(ov.sum(1, keepdims=True), EPS)

    wx, wy = axis(b[:, 0], b[:, 2], cols), axis(b[:, 1], b[:, 3], rows)
    return (wy[:, :, None] * wx[:, None, :]).reshape(len(b), rows * cols).astype(np.float32)


def pixel_boxes(boxes, width, height):
    """Fractional boxes -> integer pixel boxes (x0, y0, x1, y1) of a width x height image."""
    b = np.asarray(boxes, np.float64) * np.array([width, height, width, height])
    return np.round(b).astype(np.int64)


def segments(n_frames, step=10, min_frames=50, max_frames=100):
    """(S, 2) int64 [start, end) frame spans: starts every `step` frames, lengths min..max in steps
    of `step`, ends inside the caption.  Empty (0, 2) when the caption is shorter than min_frames."""
    starts = np.arange(0, max(n_frames - min_frames, -1) + 1, step)
    lengths = np.arange(min_frames, max_frames + 1, step)
    s, l = np.meshgrid(starts, lengths, indexing="ij")
    seg = np.stack([s.ravel(), (s + l).ravel()], 1)
    return seg[seg[:, 1] <= n_frames].astype(np.int64).reshape(-1, 2)


def interval_iou(a, b):
    """IoU of intervals a (..., 2) and b (..., 2), broadcast."""
    inter = np.clip(np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    return inter / np.maximum(union, EPS)


def span_means(frames, spans):
    """Mean of frames (T, D) over fractional spans (S, 2) in frame units (a span [s, e) of a
    piecewise-constant signal: linear interpolation of the cumulative sum), without a loop over
    spans.  Spans are clipped to [0, T]."""
    T = len(frames)
    csum = np.concatenate([np.zeros((1, frames.shape[1]), np.float64), np.cumsum(frames, 0, np.float64)])
    sp = np.clip(np.asarray(spans, np.float64), 0, T)

    def at(x):  # cumulative sum at fractional positions x (S,)
        i = np.minimum(np.floor(x).astype(np.int64), T - 1)
        frac = (x - i)[:, None]
        return csum[i] + frac * (csum[i + 1] - csum[i])

    width = np.maximum(sp[:, 1] - sp[:, 0], EPS)[:, None]
    return ((at(sp[:, 1]) - at(sp[:, 0])) / width).astype(np.float32)
