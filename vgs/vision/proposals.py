"""R-CNN-style proposals: selective search boxes, a size filter, context-padded warps, greedy NMS.

Boxes are float/int arrays (K, 4) of x0, y0, x1, y1 in pixels (x1, y1 exclusive)."""
import cv2
import numpy as np

STRATEGIES = ("single", "fast", "quality")


def selective_search(image, strategy="fast", max_side=500, k=200, sigma=0.8):
    """Selective-search boxes for an RGB uint8 image, sorted so the result is deterministic.

    OpenCV returns the same set in a varying order between calls; sorting fixes the order.
    Large images are shrunk so the longer side is <= max_side (boxes are mapped back)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selective-search strategy {strategy!r}; choose from {STRATEGIES}")
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w)) if max_side else 1.0
    small = image if scale == 1.0 else cv2.resize(
        image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    if strategy == "single":
        ss.switchToSingleStrategy(k, sigma)
    elif strategy == "fast":
        ss.switchToSelectiveSearchFast()
    else:
        ss.switchToSelectiveSearchQuality()
    rects = np.asarray(ss.process(), dtype=np.float64).reshape(-1, 4)  # x, y, w, h
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / scale
    boxes = np.clip(np.round(boxes), 0, [w, h, w, h]).astype(np.int32)
    boxes = np.unique(boxes, axis=0)  # sorted lexicographically, duplicates from rescaling gone
    return boxes


def size_filter(boxes, width, height, min_side_frac=0.1, min_area_frac=0.02):
    """Drop tiny crops: a softmax CNN has no background class, so small crops of texture win
    with confident nonsense labels.  Sides >= min_side_frac of the image's short side and
    area >= min_area_frac of the image."""
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    short = min(width, height)
    keep = (np.minimum(bw, bh) >= min_side_frac * short) & (bw * bh >= min_area_frac * width * height)
    return boxes[keep]


def iou_matrix(a, b):
    """Pairwise IoU of boxes a (K, 4) and b (M, 4) -> (K, M)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes, scores, iou_threshold=0.3, max_keep=None):
    """Greedy NMS: indices of kept boxes, best score first.  Ties keep the earlier box, so the
    result only depends on the (sorted) input order.  A box is suppressed when its IoU with an
    already kept box is > iou_threshold."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    iou = iou_matrix(boxes[order], boxes[order])
    alive = np.ones(len(order), bool)
    keep = []
    for i in range(len(order)):  # loop over kept boxes only; suppression is one vector op
        if not alive[i]:
            continue
        keep.append(order[i])
        if max_keep is not None and len(keep) >= max_keep:
            break
        alive &= iou[i] <= iou_threshold
    return np.asarray(keep, dtype=np.int64)


def _interp(src_w, src_h, size):
    # INTER_AREA antialiases when shrinking; it degenerates to nearest when enlarging.
    return cv2.INTER_AREA if src_w >= size and src_h >= size else cv2.INTER_LINEAR


def context_boxes(boxes, size, context_pad=16):
    """Dilate boxes so that, warped to size x size, `context_pad` output pixels of context
    surround the original box on every side (R-CNN's p = 16 at 227 px).  Integer pixels."""
    b = np.asarray(boxes, np.float64)
    inner = size - 2 * context_pad
    pad = context_pad * (b[:, 2:] - b[:, :2]) / inner
    return np.round(np.concatenate([b[:, :2] - pad, b[:, 2:] + pad], axis=1)).astype(np.int64)


def warp_regions(image, boxes, size, context_pad=16, fill=127):
    """R-CNN warp: crop each context-dilated box and resize it anisotropically to size x size.
    Parts outside the image are `fill` (127 is zero after the (x - 127) / 128 preprocessing,
    like R-CNN's mean fill).  -> uint8 (K, size, size, 3)."""
    h, w = image.shape[:2]
    big = context_boxes(boxes, size, context_pad)
    m = int(max(0, -big[:, :2].min(initial=0), (big[:, 2] - w).max(initial=0), (big[:, 3] - h).max(initial=0)))
    padded = cv2.copyMakeBorder(image, m, m, m, m, cv2.BORDER_CONSTANT, value=(fill, fill, fill))
    out = np.empty((len(big), size, size, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(big + m):  # one C call per crop
        crop = padded[y0:y1, x0:x1]
        out[i] = cv2.resize(crop, (size, size), interpolation=_interp(x1 - x0, y1 - y0, size))
    return out


def box_means(fmap, boxes, width, height):
    """Mean of a (C, H, W) feature map of a whole width x height image over each box (K, 4) in
    image pixels -> (K, C).  Map cells are constant patches, so the integral image interpolated
    bilinearly at the box corners is exact: an area-weighted mean from one cumulative sum."""
    C, H, W = fmap.shape
    S = np.zeros((H + 1, W + 1, C))
    S[1:, 1:] = np.asarray(fmap, np.float64).transpose(1, 2, 0).cumsum(0).cumsum(1)
    b = np.asarray(boxes, np.float64).reshape(-1, 4) * [W / width, H / height, W / width, H / height]
    b = np.clip(b, 0, [W, H, W, H])

    def integral(x, y):
        i, j = np.minimum(x.astype(np.int64), W - 1), np.minimum(y.astype(np.int64), H - 1)
        fx, fy = (x - i)[:, None], (y - j)[:, None]
        return ((1 - fx) * (1 - fy) * S[j, i] + fx * (1 - fy) * S[j, i + 1]
                + (1 - fx) * fy * S[j + 1, i] + fx * fy * S[j + 1, i + 1])

    x0, y0, x1, y1 = b.T
    total = integral(x1, y1) - integral(x0, y1) - integral(x1, y0) + integral(x0, y0)
    return total / np.maximum((x1 - x0) * (y1 - y0), 1e-9)[:, None]


def full_frame(image, size):
    """The whole image resized to size x size (no context: there is none); a plain direct forward."""
    h, w = image.shape[:2]
    return cv2.resize(image, (size, size), interpolation=_interp(w, h, size))
