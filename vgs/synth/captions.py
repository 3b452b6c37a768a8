"""Caption grammar: five different Flickr8k-like captions (about 8-12 words) per synthetic scene.

Captions name the objects (with counts, tint colours or sizes), their spatial relations, verbs that
suit the object kind, and the background, with the function words of real captions."""
from collections import Counter

NUMBERS = {1: "a", 2: "two", 3: "three", 4: "four"}
VERBS = {
    "animal": ["sitting", "standing", "resting", "playing", "waiting", "looking around", "sleeping",
               "jumping", "hiding", "posing", "relaxing", "staring"],
    "food": ["lying", "sitting", "placed", "shown", "served", "displayed", "arranged", "waiting"],
    "vehicle": ["parked", "standing", "waiting", "shown", "stopped", "displayed", "moving slowly"],
    "thing": ["lying", "sitting", "placed", "shown", "displayed", "hanging", "floating", "standing"],
}
PLACES = {
    "grass": ["on the grass", "on a green lawn", "in a field", "in a sunny park", "on a meadow"],
    "sky": ["in the sky", "against a blue sky", "high in the air", "under a clear sky"],
    "beach": ["on the beach", "on the sand", "near the sea shore", "on a sandy beach"],
    "water": ["in the water", "on a lake", "in a deep river", "on the ocean"],
    "snow": ["in the snow", "on white snow", "on a cold winter day", "in a snowy field"],
    "street": ["on the street", "on a grey road", "in the city", "on a busy street"],
    "room": ["in a room", "inside a house", "in a bright kitchen", "near a wall"],
    "table": ["on a table", "on a wooden table", "on a brown desk", "on the kitchen table"],
}
TEMPLATES = [
    "{np1} {be1} {verb1} {place}",
    "{np1} {be1} {verb1} {rel} {np2}",
    "{np1} {rel} {np2} {place}",
    "there {be1} {np1} and {np2} {place}",
    "a picture of {np1} and {np2} {place}",
    "{np1} and {np2} are {verb1} together {place}",
    "{np1} {be1} {verb1} {place} {rel} {np2}",
    "{this1} {np1} {verb1} {place}",
    "a photo of {np1} {place}",
    "we can see {np1} {rel} {np2}",
    "in this image {np1} {be1} {verb1} {place}",
    "{np1} {be1} {verb1} {place} in this picture",
    "look at {np1} {rel} {np2}",
    "here {be1} {np1} {verb1} {rel} {np2}",
]


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrase(group, rng, plural):
    """'a small dog', 'two red apples', 'an elephant'."""
    cat, count, colours, scales = group
    adj = []
    if len(set(colours)) == 1 and colours[0] and rng.random() < 0.8:
        adj = [colours[0]]
    elif rng.random() < 0.35:
        adj = ["big" if max(scales) > 0.4 else "small" if max(scales) < 0.3 else "little"]
        adj = adj if adj != ["little"] else []
    noun = plural[cat] if count > 1 else cat
    words = adj + [noun]
    det = NUMBERS[count] if count > 1 else (_article(words[0]) if rng.random() < 0.75 else "the")
    return " ".join([det] + words)


def _relation(a, b):
    """Spatial relation of object a to object b from their box centres."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a, b
    dx, dy = (ax0 + ax1 - bx0 - bx1) / 2, (ay0 + ay1 - by0 - by1) / 2
    if abs(dy) > 1.5 * abs(dx):
        return "above" if dy < 0 else "below"
    if abs(dx) > 1.5 * abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "next to" if abs(dx) + abs(dy) < 90 else "near"


def captions_for(scene, kinds, plural, rng, n=5, tries=200):
    """`n` distinct captions for a Scene; kinds/plural map category -> kind / plural form."""
    counts = Counter(o.category for o in scene.objects)
    groups = [
        (c, k, [o.colour for o in scene.objects if o.category == c], [o.scale for o in scene.objects if o.category == c])
        for c, k in counts.items()
    ]
    first_box = {o.category: o.box for o in reversed(scene.objects)}
    out = []
    for _ in range(tries):
        order = rng.permutation(len(groups))
        g1 = groups[order[0]]
        g2 = groups[order[1]] if len(groups) > 1 else None
        templates = [t for t in TEMPLATES if g2 is not None or "np2" not in t]
        t = templates[rng.integers(len(templates))]
        verbs = VERBS[kinds[g1[0]]]
        text = t.format(
            np1=_noun_phrase(g1, rng, plural),
            np2=_noun_phrase(g2, rng, plural) if g2 else "",
            be1="are" if g1[1] > 1 else "is",
            this1="these are" if g1[1] > 1 else "this is",
            verb1=verbs[rng.integers(len(verbs))],
            rel=_relation(first_box[g1[0]], first_box[g2[0]]) if g2 else "",
            place=PLACES[scene.background][rng.integers(len(PLACES[scene.background]))],
        )
        if text not in out and 6 <= len(text.split()) <= 14:
            out.append(text)
        if len(out) == n:
            return out
    raise RuntimeError(f"could not draw {n} distinct captions for {scene}")


def flickr_format(text):
    """Flickr8k.token.txt style: capitalised first letter, space before the final full stop."""
    return text[0].upper() + text[1:] + " ."
