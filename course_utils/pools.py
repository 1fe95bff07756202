"""Description pools for TextSpan: short texts, each tagged with the one property it is about.

    python -m course_utils.pools          # (re)write data/descriptions_real.tsv and data/descriptions_toy.tsv
    python -m course_utils.pools --check  # exit 1 if the files differ from what this script builds

Both pools are written by this course from the vocabularies and templates below (nothing copied from the
paper's pool). The real pool (~3,000 texts) describes photos: objects, animals, scenes and places, colours,
textures, materials, shapes, counts, positions, styles, lighting, weather, moods. The toy pool names every
colour, shape, position, size, count, pattern and background of the toy world, plus distractors that describe none.
"""
from __future__ import annotations

import argparse
import re
import sys

from . import assets
from . import toyworld as tw

DATA = assets.ROOT / "data"
FILES = {"real": DATA / "descriptions_real.tsv", "toy": DATA / "descriptions_toy.tsv"}

# ---- real photos -----------------------------------------------------------------------------------------
OBJECTS = """chair table lamp sofa bed bookshelf clock mirror vase teapot cup mug bowl plate fork spoon knife bottle
jar basket bucket umbrella backpack suitcase handbag wallet watch ring necklace hat cap helmet scarf glove boot shoe
sneaker sandal jacket coat dress shirt sweater tie belt camera phone laptop keyboard computer monitor television radio
guitar piano violin drum trumpet microphone headphones book notebook pencil pen envelope newspaper map globe candle
lantern ladder hammer screwdriver wrench saw axe shovel broom bicycle scooter skateboard surfboard kite balloon ball
football basketball tennis racket baseball bat frisbee toy doll teddy bear robot window door fence gate bench
mailbox fountain statue bridge tower lighthouse windmill tent flag sign traffic light fire hydrant""".split()
ANIMALS = """dog puppy cat kitten horse pony cow bull sheep goat pig rabbit hamster mouse squirrel fox wolf bear
panda koala kangaroo lion tiger leopard cheetah elephant giraffe zebra rhino hippo camel deer moose monkey
chimpanzee gorilla bat owl eagle hawk parrot penguin flamingo swan duck goose chicken rooster pigeon crow sparrow
hummingbird peacock ostrich seal dolphin whale shark octopus jellyfish crab lobster starfish turtle tortoise frog
lizard snake crocodile butterfly bee ladybug spider ant dragonfly snail worm fish goldfish""".split()
SCENES = """airport alley bakery balcony bathroom beach bedroom bridge cafe campsite canyon castle cave church city
classroom courtyard desert downtown factory farm field forest garden glacier gym harbor highway hospital island jungle
kitchen lake library market meadow mountain museum ocean office palace park playground port restaurant river rooftop
savanna shop skyline stadium street suburb subway swamp temple town tundra valley village volcano warehouse
waterfall""".split()
PLACES_2 = ["living room", "train station", "parking lot", "gas station", "swimming pool", "city street",
            "country road", "snowy mountain", "sandy beach", "rocky coast", "night market", "flower field"]
COLOURS = """red orange yellow green blue purple pink brown black white gray gold silver beige turquoise teal navy
maroon violet lavender magenta cyan olive crimson ivory""".split()
TEXTURES = """striped spotted checkered dotted furry fluffy woolly scaly feathered wrinkled smooth rough glossy matte
shiny grainy bumpy cracked rusty mossy wet frosty sandy muddy dusty knitted woven quilted embroidered lacy
polka-dot zigzag wavy swirly marbled speckled patterned plaid""".split()
MATERIALS = """wood metal glass plastic stone brick concrete marble paper cardboard leather cotton silk wool
denim rubber ceramic porcelain steel iron copper bronze gold silver clay straw bamboo ice""".split()
SHAPES = """round square rectangular triangular circular oval spherical cylindrical conical hexagonal star-shaped
heart-shaped curved spiral pointed flat tall narrow wide long thin thick symmetrical angular""".split()
COUNT_NOUNS = {"dogs": "dog", "cats": "cat", "people": "person", "birds": "bird", "cars": "car", "trees": "tree",
               "apples": "apple", "chairs": "chair", "flowers": "flower", "boats": "boat"}  # plural -> singular
NUMBERS = ["one", "two", "three", "four", "five", "six", "many", "a few", "dozens of", "a pair of"]
POSITIONS = ["on the left", "on the right", "in the center", "at the top", "at the bottom", "in the corner",
             "in the foreground", "in the background", "close to the camera", "far away"]
STYLES = ["photograph", "watercolor painting", "oil painting", "pencil sketch", "charcoal drawing", "ink drawing",
          "cartoon", "comic illustration", "anime drawing", "pixel art image", "mosaic", "collage", "engraving",
          "woodcut print", "poster", "diagram", "blueprint", "3D render", "low-poly render", "claymation still",
          "embroidery", "stained glass window", "graffiti mural", "tattoo design", "child's drawing",
          "black and white photo", "sepia photo", "polaroid photo", "vintage photo", "long exposure photo",
          "macro photo", "aerial photo", "panoramic photo", "fisheye photo", "tilt-shift photo", "x-ray image",
          "thermal image", "satellite image", "security camera still", "screenshot"]
LIGHTING = ["bright sunlight", "soft light", "harsh shadows", "backlight", "golden hour light", "blue hour light",
            "candlelight", "neon lights", "dim light", "studio lighting", "flash photography", "moonlight",
            "spotlight", "overcast light", "dappled light", "silhouette lighting", "low-key lighting",
            "high-key lighting", "firelight", "street lights at night"]
WEATHER = ["rain", "snow", "fog", "mist", "a storm", "lightning", "a rainbow", "clear skies", "clouds", "wind",
           "hail", "a heatwave", "frost", "drizzle", "a blizzard", "a sandstorm", "sunshine", "dark clouds"]
MOODS = ["peaceful", "joyful", "gloomy", "mysterious", "romantic", "nostalgic", "eerie", "playful", "dramatic",
         "serene", "chaotic", "cozy", "lonely", "festive", "tense", "melancholic", "energetic", "calm", "whimsical",
         "majestic", "spooky", "cheerful", "somber", "dreamy", "intimate"]
ACTIVITIES = ["running", "jumping", "swimming", "sleeping", "eating", "reading", "dancing", "cooking", "painting",
              "singing", "climbing", "surfing", "skiing", "cycling", "fishing", "laughing", "playing", "writing",
              "walking", "sitting", "driving", "shopping", "gardening", "hiking", "skating"]
FOOD = """pizza burger sandwich salad soup pasta noodles sushi rice bread cake pie cookie donut ice cream chocolate
cheese egg bacon steak chicken fish apple banana orange strawberry grape watermelon pineapple lemon cherry peach
pear tomato carrot broccoli corn potato mushroom pepper onion coffee tea juice wine beer milk""".split()
FOOD = [f for f in FOOD if f not in {"ice", "cream"}] + ["ice cream"]
VEHICLES = ["car", "truck", "bus", "train", "tram", "motorcycle", "tractor", "van", "taxi", "ambulance",
            "fire truck", "police car", "airplane", "helicopter", "sailboat", "canoe", "ship", "submarine", "rocket",
            "hot air balloon"]


def _real() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []

    def add(category, templates, words):
        rows.extend((t.format(w), category) for w in words for t in templates)

    add("object", ["a photo of a {}", "an image of a {}", "a close-up of a {}"], OBJECTS)
    add("animal", ["a photo of a {}", "an image of a {}", "a {} in the wild"], ANIMALS)
    add("place", ["a photo of a {}", "an image taken in a {}", "a view of a {}"], SCENES + PLACES_2)
    add("colour", ["a {} object", "something {}", "an image with {} colors", "a photo dominated by {}"], COLOURS)
    rows.extend((f"a {c} {o}", "colour") for c in COLOURS
                for o in ("car", "flower", "wall", "shirt", "bird", "ball", "door", "house", "umbrella", "sky"))
    add("texture", ["a {} texture", "a {} surface", "something {}"], TEXTURES)
    add("material", ["an object made of {}", "a {} texture", "something made of {}"], MATERIALS)
    add("shape", ["a {} object", "a {} shape", "something {}"], SHAPES)
    rows.extend((f"{n} {one if n == 'one' else many}", "count") for n in NUMBERS for many, one in COUNT_NOUNS.items())
    rows.extend((f"a {o} {p}", "position") for p in POSITIONS for o in ("dog", "person", "car", "tree", "building"))
    add("style", ["a {}", "a {} of a scene", "an image in the style of a {}"], STYLES)
    add("lighting", ["a photo in {}", "a scene lit by {}", "an image with {}"], LIGHTING)
    add("weather", ["a photo taken in {}", "a landscape with {}", "a city in {}"], WEATHER)
    add("mood", ["a {} scene", "a {} photo", "an image with a {} mood"], MOODS)
    rows.extend((f"a {m} {p}", "mood") for m in MOODS for p in ("street", "forest", "room", "beach"))
    rows.extend((f"a {st} of a {subject}", "style") for st in STYLES
                for subject in ("cat", "city", "face", "flower", "landscape", "ship", "horse", "bowl of fruit"))
    rows.extend((f"a {place} in {w}", "weather") for w in WEATHER
                for place in ("city street", "forest", "field", "harbor", "mountain", "park"))
    rows.extend((f"a {t} {o}", "texture") for t in TEXTURES[:20] for o in ("blanket", "wall", "animal", "shirt", "rug"))
    rows.extend((f"a {m} {o}", "material") for m in MATERIALS for o in ("table", "bowl", "box", "statue", "cup"))
    add("activity", ["a person {}", "people {}", "a child {}"], ACTIVITIES)
    add("food", ["a photo of {}", "a plate of {}", "a close-up of {}"], FOOD)
    add("vehicle", ["a photo of a {}", "a {} on the road", "an old {}"], VEHICLES)
    return rows


# ---- the toy world ---------------------------------------------------------------------------------------
DISTRACTORS = ["a dog", "a cat", "a car", "a tree", "a house", "a person smiling", "a beach at sunset",
               "a city street", "a bowl of fruit", "a mountain lake", "a plate of food", "a page of text",
               "a bird in the sky", "a bicycle", "a forest path", "a cup of coffee", "a crowded room",
               "a snowy field", "a portrait", "a boat on the sea"]


def _toy() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for c in tw.COLORS:
        rows += [(t.format(c), "colour") for t in ("{}", "a {} object", "something {}", "a {} shape", "the colour {}")]
    for s in tw.SHAPES:
        rows += [(t.format(s), "shape") for t in ("{}", "a {}", "a {} shape", "something shaped like a {}")]
    for pos in tw.POSITIONS.values():
        rows += [(t.format(pos), "position") for t in ("an object in the {}", "something in the {} corner",
                                                        "a shape at the {}", "the {}")]
    for side in ("left", "right", "top", "bottom"):
        rows += [(f"an object on the {side}", "position"), (f"something at the {side}", "position")]
    for size in ("small", "large", "tiny", "big"):
        rows += [(f"a {size} object", "size"), (f"a {size} shape", "size"), (f"something {size}", "size")]
    for n, word in ((1, "one"), (2, "two"), (3, "three")):
        noun = "object" if n == 1 else "objects"
        rows += [(f"{word} {noun}", "count"), (f"{word} {'shape' if n == 1 else 'shapes'}", "count")]
    rows += [("a single shape", "count"), ("a pair of shapes", "count"), ("several shapes", "count")]
    for pat, noun in (("plain", "a plain colour"), ("striped", "stripes"), ("dotted", "dots"), ("checked", "checks"),
                      ("speckled", "speckles"), ("outlined", "an outline")):
        rows += [(t.format(pat), "pattern") for t in ("{}", "a {} object", "a {} shape")] + [(f"a shape with {noun}", "pattern")]
    for bg in tw.BACKGROUNDS:
        rows += [(t.format(bg), "background") for t in ("a {} background", "on a {} background", "something on {}")]
    rows += [(d, "distractor") for d in DISTRACTORS]
    return rows


def build(kind: str) -> list[tuple[str, str]]:
    """The pool as (text, property) pairs: deduplicated (first property wins), in a fixed order.

    Used by: python -m course_utils.pools (through main), which writes data/descriptions_*.tsv.
    """
    rows = {"real": _real, "toy": _toy}[kind]()
    seen, out = set(), []
    for text, prop in rows:
        key = re.sub(r"\ba (?=[aeiou])", "an ", " ".join(text.lower().split()))  # "a orange" -> "an orange"
        if key not in seen:
            seen.add(key)
            out.append((key, prop))
    return out


def load_pool(kind: str) -> tuple[list[str], list[str]]:
    """(texts, properties) from data/descriptions_<kind>.tsv.

    Used by: notebook 06 (its set-up cell) and textspan.toy_head_roles.
    """
    if kind not in FILES:
        raise ValueError(f"load_pool: kind must be 'real' or 'toy', not {kind!r}.")
    lines = FILES[kind].read_text(encoding="utf-8").splitlines()[1:]  # skip the header
    texts, props = zip(*(line.split("\t") for line in lines))
    return list(texts), list(props)


def _render(kind: str) -> str:
    return "text\tproperty\n" + "".join(f"{t}\t{p}\n" for t, p in build(kind))


def main(argv=None) -> int:
    """python -m course_utils.pools: (re)write the pools in data/, or with --check exit 1 if they are stale.

    Used by: python -m course_utils.pools and tests/test_textspan.py (--check).
    """
    parser = argparse.ArgumentParser(description="Build the TextSpan description pools in data/.")
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    stale = []
    for kind, path in FILES.items():
        text = _render(kind)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(DATA.parent)}: {text.count(chr(10)) - 1} descriptions")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python -m course_utils.pools`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
