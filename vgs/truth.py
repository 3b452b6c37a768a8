"""Ground truth of the synthetic corpus shared by the stages that score against it: which caption
words name an object category, and box overlap."""
import numpy as np

IRREGULAR = {"mouse": "mice", "goose": "geese", "person": "people", "man": "men", "woman": "women",
             "child": "children", "foot": "feet", "tooth": "teeth", "knife": "knives", "leaf": "leaves"}


def name_forms(category):
    """Caption words naming a category: the name or its plural (regular rules + a few irregulars)."""
    c = str(category)
    forms = {c, c + "s", c + "es"}
    if c in IRREGULAR:
        forms.add(IRREGULAR[c])
    if c.endswith("y"):
        forms.add(c[:-1] + "ies")
    return forms


def box_iou(a, b):
    """IoU of boxes a (..., 4) and b (..., 4) (x0, y0, x1, y1), broadcast."""
    lt = np.maximum(a[..., :2], b[..., :2])
    rb = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[..., 2:] - x[..., :2], 0, None).prod(-1)
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)
