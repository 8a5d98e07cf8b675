"""Text Processor: `textlines` -> lowercased words -> `words`.

The blog's Java snippet, ported line by line:

    builder.stream(f"{prefix}textlines")
        .flat_map_values(lambda line: words_of(line))
        .to(f"{prefix}words")
"""

from __future__ import annotations

import re

import regex

from services.service import SERVICE_SETTINGS, Service
from topicflow import StreamsBuilder, Topology

# Java's `\W+` with UNICODE_CHARACTER_CLASS splits at anything but a word
# character: [\p{Alpha}\p{gc=Mn}\p{gc=Me}\p{gc=Mc}\p{Digit}\p{gc=Pc}\p{IsJoin_Control}]
# (java.util.regex.Pattern). Python's own `\w` differs: it cuts words at
# combining marks (Devanagari, Thai...) and connector punctuation, and keeps
# superscript digits, so non-ASCII lines use the exact definition. The words
# are the runs of word characters: finding them is the split with its empty
# tokens (Java keeps a leading one) already dropped, and a third cheaper.
UNICODE_WORD = regex.compile(
    r"[\p{Alpha}\p{gc=Mn}\p{gc=Me}\p{gc=Mc}\p{Nd}\p{gc=Pc}\p{Join_Control}]+"
)
# On ASCII both definitions are [A-Za-z0-9_] (lowercased: no A-Z), and `re`
# matches about twice as fast.
ASCII_WORD = re.compile(r"[a-z0-9_]+")


def words_of(line: str | None) -> list[str]:
    """The lowercased words of a line."""
    if not line:
        return []
    lowered = line.lower()
    if lowered.isascii():
        return ASCII_WORD.findall(lowered)
    return UNICODE_WORD.findall(lowered)


def build_topology(prefix: str = "") -> Topology:
    builder = StreamsBuilder()
    (builder.stream(f"{prefix}textlines").flat_map_values(words_of).to(f"{prefix}words"))
    return builder.build()


SERVICE = Service(
    name="text-processor",
    application_name="text-processor-app",
    input_topics=("textlines",),
    output_topics=("words",),
    build_topology=build_topology,
    settings=SERVICE_SETTINGS,
)


def main(argv: list[str] | None = None) -> int:
    return SERVICE.main(argv, description="textlines -> lowercased words -> words")


if __name__ == "__main__":
    raise SystemExit(main())
