"""Synthetic scenes: 1-4 colour-emoji objects on a named procedural background, with GT boxes."""
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Debian's fonts-noto-color-emoji, or conda-forge's font-ttf-noto-emoji in the conda env (envs/vgs.yaml).
EMOJI_FONTS = ("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
               os.path.join(sys.prefix, "fonts", "NotoColorEmoji.ttf"))
EMOJI_PX = 109  # the only size of the font's bitmap strike

# name -> (top colour, bottom colour, noise amplitude); the name is what captions say.
BACKGROUNDS = {
    "grass": ((96, 170, 70), (40, 110, 30), 18),
    "sky": ((120, 180, 255), (215, 235, 255), 4),
    "beach": ((240, 220, 170), (205, 175, 120), 12),
    "water": ((40, 120, 190), (20, 70, 140), 10),
    "snow": ((245, 248, 255), (215, 222, 235), 6),
    "street": ((120, 120, 125), (80, 80, 85), 14),
    "room": ((225, 210, 185), (190, 170, 140), 5),
    "table": ((160, 110, 65), (120, 75, 40), 10),
}
# Tints the grammar may name; applied to some objects ("a blue dog").
COLOURS = {
    "red": (220, 40, 40), "blue": (50, 90, 230), "green": (40, 170, 60), "yellow": (240, 210, 30),
    "purple": (140, 60, 190), "orange": (245, 140, 30), "pink": (245, 130, 190), "black": (30, 30, 30),
}


@dataclass
class SceneObject:
    category: str
    box: tuple  # x0, y0, x1, y1 in pixels (tight box of the drawn pixels)
    scale: float  # object side / image side
    colour: str | None = None


@dataclass
class Scene:
    background: str
    objects: list = field(default_factory=list)


@lru_cache(maxsize=None)
def _glyph(char):
    """The emoji as a tightly cropped RGBA image (rendered once per process)."""
    path = emoji_font()
    font = ImageFont.truetype(path, EMOJI_PX)
    im = Image.new("RGBA", (EMOJI_PX + 40, EMOJI_PX + 40), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((4, 4), char, font=font, embedded_color=True)
    bbox = im.getbbox()
    if bbox is None:
        raise ValueError(f"emoji {char!r} renders empty with {path}")
    return im.crop(bbox)


def emoji_font():
    for path in EMOJI_FONTS:
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"no colour emoji font at {' or '.join(EMOJI_FONTS)}: install Debian's "
                            "fonts-noto-color-emoji (envs/apt.txt; ./vgs setup does)")


def _background(name, w, h, rng):
    top, bottom, noise = BACKGROUNDS[name]
    t = np.linspace(0, 1, h)[:, None, None]
    img = (1 - t) * np.array(top) + t * np.array(bottom)
    img = np.broadcast_to(img, (h, w, 3)) + rng.normal(0, noise, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def _overlap(a, b):
    """Intersection over the smaller box: large when a small object sits on a big one."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def sample_scene(rng, categories, size, n_range, emoji, max_overlap=0.2):
    """Draw a scene spec and render it on a `size` (side, or [width, height]) image.  Returns
    (PIL image, Scene).  Object sides are a share of the shorter image side.

    Objects are placed so that no box covers more than `max_overlap` of another (objects stay
    visible and their ground-truth boxes stay meaningful); about one scene in four repeats
    a category so the captions can count ("two dogs")."""
    w, h = (size, size) if np.isscalar(size) else size
    bg = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    img = _background(bg, w, h, rng)
    n = int(rng.integers(n_range[0], n_range[1] + 1))
    cats = list(rng.choice(categories, size=n, replace=False)) if n <= len(categories) else []
    if n > 1 and rng.random() < 0.25:
        cats[-1] = cats[0]
    scene = Scene(bg)
    for cat in cats:
        colour = list(COLOURS)[rng.integers(len(COLOURS))] if rng.random() < 0.3 else None
        glyph = _glyph(emoji[cat])
        if colour:  # multiply-tint keeps the drawing's shading recognisable
            rgb = np.asarray(glyph.convert("RGB"), float) * 0.45 + np.array(COLOURS[colour]) * 0.55
            glyph = Image.merge("RGBA", (*Image.fromarray(rgb.astype(np.uint8)).split(), glyph.getchannel("A")))
        if rng.random() < 0.5:
            glyph = glyph.transpose(Image.FLIP_LEFT_RIGHT)
        glyph = glyph.rotate(float(rng.uniform(-20, 20)), resample=Image.BICUBIC, expand=True)
        for _ in range(30):
            scale = float(rng.uniform(0.22, 0.5))
            side = max(8, int(scale * min(w, h)))
            g = glyph.resize((side, max(8, int(side * glyph.height / glyph.width))), Image.LANCZOS)
            if g.width > w or g.height > h:  # a tall rotated glyph at a large scale: try another scale
                continue  # (before any draw of the position, so scenes that fit are drawn as before)
            x, y = int(rng.integers(0, w - g.width + 1)), int(rng.integers(0, h - g.height + 1))
            bx = g.getbbox()
            box = (x + bx[0], y + bx[1], x + bx[2], y + bx[3])
            if all(_overlap(box, o.box) <= max_overlap for o in scene.objects):
                img.paste(g, (x, y), g)
                scene.objects.append(SceneObject(str(cat), box, scale, colour))
                break
    if not scene.objects:
        raise RuntimeError("scene with no object placed; image too small for the object scales")
    return img, scene
