"""Synthetic English-like sentences for the text generator, from a seeded RNG.

Written for topicflow (no copied text): a few hundred words combined by simple
patterns, with punctuation, numbers and some non-ASCII words so the word
splitter meets what real text holds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

_ADJECTIVES = [
    "quick",
    "lazy",
    "bright",
    "quiet",
    "heavy",
    "small",
    "ancient",
    "modern",
    "silver",
    "hidden",
    "gentle",
    "rapid",
    "distant",
    "narrow",
    "broad",
    "calm",
    "curious",
    "eager",
    "fragile",
    "golden",
    "hollow",
    "humble",
    "icy",
    "jolly",
    "keen",
    "little",
    "mellow",
    "noble",
    "odd",
    "proud",
    "rusty",
    "steady",
    "tender",
    "urban",
    "vivid",
    "wild",
    "young",
    "zealous",
    "crisp",
    "dusty",
    "fuzzy",
    "grand",
    "hazy",
    "lucky",
    "misty",
    "naïve",
    "rosé",
]
_NOUNS = [
    "river",
    "mountain",
    "stream",
    "broker",
    "partition",
    "topic",
    "record",
    "window",
    "table",
    "worker",
    "signal",
    "harbor",
    "lantern",
    "meadow",
    "orchard",
    "pebble",
    "quarry",
    "rooftop",
    "saddle",
    "tunnel",
    "valley",
    "wagon",
    "anchor",
    "basket",
    "candle",
    "desk",
    "engine",
    "feather",
    "garden",
    "hammer",
    "island",
    "jacket",
    "kettle",
    "ladder",
    "mirror",
    "needle",
    "ocean",
    "pillow",
    "rocket",
    "spoon",
    "thunder",
    "umbrella",
    "violin",
    "whistle",
    "café",
    "façade",
    "straße",
    "jalapeño",
    "smörgåsbord",
]
_VERBS = [
    "carries",
    "follows",
    "counts",
    "writes",
    "reads",
    "joins",
    "crosses",
    "watches",
    "builds",
    "finds",
    "keeps",
    "moves",
    "opens",
    "pulls",
    "pushes",
    "sends",
    "splits",
    "streams",
    "turns",
    "waits",
    "lifts",
    "guards",
    "greets",
    "chases",
    "hides",
    "paints",
]
_ADVERBS = [
    "slowly",
    "quickly",
    "quietly",
    "boldly",
    "gladly",
    "rarely",
    "often",
    "never",
    "always",
]
_OPENERS = ("", "", "", "Then ", "Later, ", "\u201cWell,\u201d she said, ", "-- ", "(", "Yes! ")
_ENDINGS = (".", ".", ".", "!", "?", "...", ";", ".)")


def sentences(seed: int = 0) -> Iterator[str]:
    """An endless, reproducible stream of sentences."""
    rng = random.Random(seed)
    choice = rng.choice
    while True:
        subject = f"the {choice(_ADJECTIVES)} {choice(_NOUNS)}"
        obj = f"{choice(_ADJECTIVES)} {choice(_NOUNS)}"
        if rng.random() < 0.2:
            obj += f" number {rng.randrange(1000)}"
        verb = choice(_VERBS)
        if rng.random() < 0.3:
            verb = f"{choice(_ADVERBS)} {verb}"
        opener = choice(_OPENERS)
        sentence = f"{subject} {verb} a {obj}{choice(_ENDINGS)}"
        if not opener or opener.endswith(("(", "-- ")):
            sentence = sentence[0].upper() + sentence[1:]
        yield opener + sentence
