"""Toy world: procedurally drawn scenes of coloured shapes, with captions and per-object masks.

Deterministic: scene `i` of a split is drawn from a generator seeded by (split seed, i), so every learner and
every CI run sees the same pixels. The world knows where every object is, which lets the course *score*
heatmaps against ground truth.

    10 colours x 10 shapes = 100 classes ("red_circle", ...), grouped into 20 superclasses
    (colour family x shape, e.g. "warm_circle"), mirroring CIFAR-100's 100 fine / 20 coarse labels.
    Each object also has a size, a position (its region) and a pattern (how its inside is painted: plain, striped,
    ...), which captions name some of the time; none of them changes the class.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
GRID = 2  # regions per side: objects sit in one of GRID x GRID regions
COLORS = {  # name -> RGB; families below split them into warm and cool
    "red": (220, 30, 30), "orange": (245, 140, 20), "yellow": (240, 220, 30), "pink": (245, 120, 190),
    "brown": (130, 75, 30), "green": (40, 170, 50), "cyan": (40, 210, 220), "blue": (30, 70, 225),
    "purple": (135, 45, 190), "gray": (128, 128, 128),
}
COLOR_FAMILY = {c: ("warm" if c in {"red", "orange", "yellow", "pink", "brown"} else "cool") for c in COLORS}
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "heart", "ring", "semicircle", "arrow")
SIZES = {"small": (0.32, 0.37), "large": (0.42, 0.47)}  # object radius as a fraction of its region's width
BACKGROUNDS = {"white": (245, 245, 240), "black": (20, 20, 25), "cream": (235, 225, 200), "slate": (70, 80, 95)}
PATTERNS = ("plain", "striped", "dotted", "checked", "speckled", "outlined")  # how an object's inside is painted
POSITIONS = {(0, 0): "top left", (0, 1): "top right", (1, 0): "bottom left", (1, 1): "bottom right"}
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}

CLASSES = [f"{c}_{s}" for c in COLORS for s in SHAPES]  # 100 fine classes, colour-major
SUPERCLASSES = [f"{fam}_{s}" for fam in ("warm", "cool") for s in SHAPES]  # 20 coarse classes


def class_name(color: str, shape: str) -> str:
    """"red", "circle" -> "red_circle", the class name, after checking both attributes.

    Used by: tests/test_toyworld.py.
    """
    check_attributes(color, shape)
    return f"{color}_{shape}"


def superclass_of(label: int) -> int:
    """Class index -> superclass index (colour family x shape, e.g. "warm_circle").

    Used by: data.superclasses (notebook 03, "Where does it fail?", offline) and the tests.
    """
    color, shape = CLASSES[label].split("_")
    return SUPERCLASSES.index(f"{COLOR_FAMILY[color]}_{shape}")


def check_attributes(color: str | None = None, shape: str | None = None, size: str | None = None,
                     background: str | None = None, pattern: str | None = None) -> None:
    """Raise a ValueError naming the bad attribute and listing the allowed values.

    Used by: class_name and draw_scene.
    """
    for kind, value, allowed in (("colour", color, COLORS), ("shape", shape, SHAPES), ("size", size, SIZES),
                                 ("background", background, BACKGROUNDS), ("pattern", pattern, PATTERNS)):
        if value is not None and value not in allowed:
            raise ValueError(f"unknown {kind} {value!r}; the toy world has: {', '.join(allowed)}.")


@dataclass
class ToyObject:
    """One drawn object: colour, shape, size, region (row, col), its pixel mask [H, W] and its pattern; `.label` is
    its class.

    Taught in: notebook 07, "The critical line, with the real shapes".
    """
    color: str
    shape: str
    size: str
    region: tuple[int, int]  # (row, col) in the GRID x GRID layout
    mask: np.ndarray = field(repr=False, default=None)  # [H, W] bool: the object's pixels in the scene
    pattern: str = "plain"

    @property
    def label(self) -> int:
        return CLASSES.index(f"{self.color}_{self.shape}")

    @property
    def position(self) -> str:
        return POSITIONS[self.region]

    def phrase(self, with_size: bool = True, with_position: bool = False, with_pattern: bool = False) -> str:
        words = ([self.size] if with_size else []) + ([self.pattern] if with_pattern else []) + [self.color, self.shape]
        return " ".join(words) + (f" at the {self.position}" if with_position else "")


@dataclass
class Scene:
    """A drawn scene: the PIL image, its objects (each with a mask), the background and a caption.

    Taught in: notebook 02, "The toy world".
    """
    image: Image.Image
    objects: list[ToyObject]
    background: str
    caption: str


def _shape_points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    def poly(n, start, radius=r):
        return [(cx + radius * math.cos(start + 2 * math.pi * k / n), cy + radius * math.sin(start + 2 * math.pi * k / n))
                for k in range(n)]

    if shape == "square":
        return poly(4, math.pi / 4, r * 1.05)
    if shape == "triangle":
        return poly(3, -math.pi / 2, r * 1.15)
    if shape == "diamond":
        return [(cx, cy - r * 1.1), (cx + r * 0.75, cy), (cx, cy + r * 1.1), (cx - r * 0.75, cy)]
    if shape == "heart":  # the classic parametric heart, scaled to radius r
        ts = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        hx, hy = 16 * np.sin(ts) ** 3, 13 * np.cos(ts) - 5 * np.cos(2 * ts) - 2 * np.cos(3 * ts) - np.cos(4 * ts)
        return [(cx + r * x / 16, cy - r * (y + 2) / 15) for x, y in zip(hx, hy)]
    if shape == "star":
        return [(cx + (r if k % 2 == 0 else r * 0.45) * math.cos(-math.pi / 2 + math.pi * k / 5),
                 cy + (r if k % 2 == 0 else r * 0.45) * math.sin(-math.pi / 2 + math.pi * k / 5)) for k in range(10)]
    if shape == "cross":
        a, b = r, r * 0.36
        return [(cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b), (cx + a, cy + b), (cx + b, cy + b),
                (cx + b, cy + a), (cx - b, cy + a), (cx - b, cy + b), (cx - a, cy + b), (cx - a, cy - b), (cx - b, cy - b)]
    if shape == "arrow":
        a, b, head = r, r * 0.3, r * 0.1
        return [(cx - a, cy - b), (cx + head, cy - b), (cx + head, cy - a * 0.85), (cx + a, cy),
                (cx + head, cy + a * 0.85), (cx + head, cy + b), (cx - a, cy + b)]
    raise AssertionError(shape)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, fill=fill)
        draw.ellipse((cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55), fill=0 if fill != 0 else 1)
    elif shape == "semicircle":
        draw.pieslice((cx - r, cy - r * 0.6, cx + r, cy + r * 1.4), 180, 360, fill=fill)
    else:
        draw.polygon(_shape_points(shape, cx, cy, r), fill=fill)


def _object_mask(shape: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    _draw_shape(ImageDraw.Draw(canvas), shape, cx, cy, r, 255)
    return np.asarray(canvas) > 127


def _pattern_mask(pattern: str, size: int, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """[H, W] bool: the pixels of an object (mask [H, W] bool) painted in its second tone; `rng` shifts the pattern.

    Used by: draw_scene.
    """
    yy, xx = np.mgrid[:size, :size]
    oy, ox = rng.integers(0, 4, 2)
    if pattern == "plain":
        return np.zeros_like(mask)
    if pattern == "striped":
        return mask & (((yy + oy) // 2) % 2 == 0)
    if pattern == "dotted":
        return mask & ((yy + oy) % 4 < 2) & ((xx + ox) % 4 < 2)
    if pattern == "checked":
        return mask & ((((yy + oy) // 3) + ((xx + ox) // 3)) % 2 == 0)
    if pattern == "speckled":
        return mask & (rng.random((size, size)) < 0.35)
    if pattern == "outlined":
        inner = mask.copy()
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1), (2, 0), (-2, 0), (0, 2), (0, -2)):
            inner &= np.roll(np.roll(mask, dy, 0), dx, 1)
        return mask & ~inner
    raise ValueError(f"unknown pattern {pattern!r}; the toy world has: {', '.join(PATTERNS)}.")


def draw_scene(objects: list[dict], background: str = "white", seed: int = 0, size: int = IMAGE_SIZE,
               caption: str | None = None) -> Scene:
    """Draw objects given as dicts with color, shape, size, region (row, col) and optionally pattern (default
    "plain"); jitter comes from `seed`.

    Used by: random_scene and tests/test_toyworld.py.
    """
    check_attributes(background=background)
    if len(objects) > GRID * GRID:
        raise ValueError(f"impossible scene: {len(objects)} objects but only {GRID * GRID} regions; use at most {GRID * GRID}.")
    regions = [tuple(o["region"]) for o in objects]
    if len(set(regions)) != len(regions):
        raise ValueError(f"impossible scene: two objects share a region ({regions}); each region holds one object.")
    rng = np.random.default_rng(seed)
    cell = size / GRID
    base = np.array(BACKGROUNDS[background], dtype=np.float32)
    noise = rng.normal(0, 6, (size, size, 1)) + np.linspace(-8, 8, size)[None, :, None] * rng.uniform(-1, 1)
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    placed = []
    for o in objects:
        check_attributes(o["color"], o["shape"], o["size"], pattern=o.get("pattern"))
        row, col = o["region"]
        if not (0 <= row < GRID and 0 <= col < GRID):
            raise ValueError(f"region {o['region']} is outside the {GRID}x{GRID} grid.")
        r = cell * rng.uniform(*SIZES[o["size"]])
        slack = cell / 2 - r
        cx = (col + 0.5) * cell + rng.uniform(-slack, slack) * 0.8
        cy = (row + 0.5) * cell + rng.uniform(-slack, slack) * 0.8
        shade = np.clip(np.array(COLORS[o["color"]]) + rng.integers(-12, 13, 3), 0, 255)
        _draw_shape(draw, o["shape"], cx, cy, r, tuple(int(v) for v in shade))
        if o["shape"] == "ring":  # the hole shows the background again
            hole = _object_mask("circle", cx, cy, r * 0.55, size)
            np_img = np.array(image)
            np_img[hole] = pixels[hole]
            image.paste(Image.fromarray(np_img))
            draw = ImageDraw.Draw(image)
        mask = _object_mask(o["shape"], cx, cy, r, size)
        pattern = o.get("pattern", "plain")
        painted = _pattern_mask(pattern, size, rng, mask)
        if painted.any():
            lum = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2]
            second = shade * 0.45 if lum > 110 else shade + (255 - shade) * 0.6
            np_img = np.array(image)
            np_img[painted] = second.astype(np.uint8)
            image.paste(Image.fromarray(np_img))
            draw = ImageDraw.Draw(image)
        placed.append(ToyObject(o["color"], o["shape"], o["size"], (row, col), mask, pattern))
    scene = Scene(image, placed, background, "")
    scene.caption = caption if caption is not None else describe(scene, rng)
    return scene


CAPTION_TEMPLATES_ONE = (  # single-object captions: without the position ...
    "a {obj}", "a photo of a {obj}", "a {obj} on a {bg} background", "one {obj}", "a drawing of a {obj}",
)
CAPTION_TEMPLATES_ONE_AT = (  # ... and with it
    "a {obj_pos}", "there is a {obj} in the {pos}", "a photo of a {obj_pos}",
)
# How often a caption names each optional property. Heads can only come to mean "size", "position" or "pattern" if
# captions name them often enough for the text tower to learn those words (notebook 06 reads the heads through text).
CAPTION_RATES = dict(size=0.6, position=0.6, count=0.5, pattern=0.6)


def describe(scene: Scene, rng: np.random.Generator, rates: dict | None = None) -> str:
    """A varied caption: colour and shape always; size, position, pattern, count and background at `rates`
    (CAPTION_RATES).

    Used by: draw_scene (the captions shown in notebook 02, "The toy world").
    """
    rates = CAPTION_RATES if rates is None else rates
    objs = scene.objects
    with_size = rng.random() < rates["size"]
    with_pos = rng.random() < rates["position"]
    with_pat = rng.random() < rates["pattern"]
    if len(objs) == 1:
        o = objs[0]
        templates = CAPTION_TEMPLATES_ONE_AT if with_pos else CAPTION_TEMPLATES_ONE
        template = templates[rng.integers(len(templates))]
        return template.format(obj=o.phrase(with_size, False, with_pat), obj_pos=o.phrase(with_size, True, with_pat),
                               bg=scene.background, pos=o.position)
    order = rng.permutation(len(objs))
    parts = [objs[i].phrase(with_size, with_pos, with_pat) for i in order]
    listed = ", ".join(f"a {p}" for p in parts[:-1]) + f" and a {parts[-1]}"
    if rng.random() < rates["count"]:
        return f"{COUNT_WORDS[len(objs)]} shapes: {listed}"
    return listed if rng.random() < 0.5 else f"{listed} on a {scene.background} background"


def random_objects(rng: np.random.Generator, n_objects: int, label: int | None = None) -> list[dict]:
    """`n_objects` random objects (distinct classes, distinct regions) as draw_scene dicts.

    Used by: random_scene.
    """
    if not 1 <= n_objects <= GRID * GRID:
        raise ValueError(f"impossible scene: n_objects={n_objects}, but the grid has {GRID * GRID} regions.")
    regions = [tuple(POSITIONS_LIST[i]) for i in rng.permutation(len(POSITIONS_LIST))[:n_objects]]
    labels = [label] if label is not None else []
    while len(labels) < n_objects:  # distinct classes within a scene, so every phrase names one object
        candidate = int(rng.integers(len(CLASSES)))
        if candidate not in labels:
            labels.append(candidate)
    objs = []
    for lab, region in zip(labels, regions):
        color, shape = CLASSES[lab].split("_")
        objs.append(dict(color=color, shape=shape, size=list(SIZES)[rng.integers(len(SIZES))], region=region,
                         pattern=PATTERNS[rng.integers(len(PATTERNS))]))
    return objs


POSITIONS_LIST = list(POSITIONS)


def random_scene(seed: int, n_objects: int | None = None, label: int | None = None, size: int = IMAGE_SIZE) -> Scene:
    """Scene number `seed`: 1-3 objects (or `n_objects`), random classes, regions, sizes, patterns and background.

    Taught in: notebook 02, "The toy world".
    """
    rng = np.random.default_rng(seed)
    n = n_objects if n_objects is not None else int(rng.integers(1, 4))
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    return draw_scene(random_objects(rng, n, label), background, seed=int(rng.integers(2**31)), size=size)


SPLIT_SEEDS = {"train": 1_000_000, "test": 2_000_000, "scenes": 3_000_000}


class ToyShapes:
    """Single-object toy images with torchvision CIFAR100's interface: `.classes`, `ds[i] -> (PIL, label)`.

    The label cycles through the 100 classes, so every split is balanced; everything else is random but
    fixed by (split, index). Default sizes: 10,000 train images and 2,000 test images (20 per class).
    Taught in: notebook 02, "The toy world".
    """

    def __init__(self, train: bool = False, n: int | None = None, transform=None, size: int = IMAGE_SIZE):
        self.train = train
        self.n = n if n is not None else (10_000 if train else 2_000)
        self.transform = transform
        self.size = size
        self.classes = list(CLASSES)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.superclasses = list(SUPERCLASSES)
        self._seed = SPLIT_SEEDS["train" if train else "test"]

    def __len__(self) -> int:
        return self.n

    def scene(self, index: int) -> Scene:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} is out of range for a ToyShapes split of {self.n} images.")
        index %= self.n
        return random_scene(self._seed + index, n_objects=1, label=index % len(CLASSES), size=self.size)

    def __getitem__(self, index: int):
        image = self.scene(index).image
        label = index % self.n % len(CLASSES)
        return (self.transform(image) if self.transform else image), label

    def __repr__(self) -> str:
        return f"ToyShapes(split={'train' if self.train else 'test'}, n={self.n}, classes={len(self.classes)})"


def scenes(n: int, n_objects: int | None = None, start: int = 0, size: int = IMAGE_SIZE) -> list[Scene]:
    """Multi-object scenes with masks (the split used to score heatmaps).

    Taught in: notebook 02, "Explore: type a caption, see the nearest scenes".
    """
    return [random_scene(SPLIT_SEEDS["scenes"] + start + i, n_objects=n_objects, size=size) for i in range(n)]
