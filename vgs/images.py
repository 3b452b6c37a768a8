"""The one image reader: every stage that reads pixels (ingest, vision, patterns, figures) sees the
image as a viewer displays it.

- EXIF orientation applied (PIL.ImageOps.exif_transpose): a phone photo stored sideways with
  orientation 6 is read upright, and its displayed width and height are what ingest records;
- decoded by content (PNG or GIF bytes behind a .jpg name are fine; an animated file gives its
  first frame), converted to 8-bit RGB: greyscale, palette and CMYK converted; 16-bit samples
  scaled (not clipped); transparency composited on white;
- a file that cannot be read or decoded (missing, a directory, a broken link, permission denied,
  truncated, not an image, a decompression bomb) is a BadImage naming the file and the problem."""
import numpy as np

from .runtime import path_problem


class BadImage(Exception):
    """An image that cannot be used; the message names the file and the problem."""


def _rgb(im):
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit greyscale: scale, do not clip
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(a * (255.0 if a.max() <= 1 else 1.0) + 0.5, 0, 255).astype(np.uint8))
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def load_image(path, min_side=2):
    """(H, W, 3) uint8 RGB of the image at `path` as displayed (see the module doc); BadImage when it
    cannot be read, or is smaller than `min_side` pixels on a side."""
    from PIL import Image, ImageOps

    problem = path_problem(path, "image file")
    if problem:
        raise BadImage(f"{path}: {problem}")
    try:
        with Image.open(path) as im:
            im.load()  # decodes the whole file: a truncated JPEG fails here, not later
            im = ImageOps.exif_transpose(im)
            arr = np.asarray(_rgb(im))
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError ...
        raise BadImage(f"{path}: unreadable image ({type(e).__name__}: {e})") from e
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise BadImage(f"{path}: {w}x{h} px, smaller than {min_side} px on a side")
    return arr
