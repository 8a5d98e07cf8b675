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

# Java's `\W+` with UNICODE_CHARACTER_CLASS: a word character is
# [\p{Alpha}\p{gc=Mn}\p{gc=Me}\p{gc=Mc}\p{Digit}\p{gc=Pc}\p{IsJoin_Control}]
# (java.util.regex.Pattern). Python's own `\w` differs: it cuts words at
# combining marks (Devanagari, Thai...) and connector punctuation, and keeps
# superscript digits, so non-ASCII lines use the exact definition.
UNICODE_SPLIT = regex.compile(
    r"[^\p{Alpha}\p{gc=Mn}\p{gc=Me}\p{gc=Mc}\p{Nd}\p{gc=Pc}\p{Join_Control}]+"
)
# On ASCII both definitions are [A-Za-z0-9_], and `re` splits about twice as fast.
ASCII_SPLIT = re.compile(r"[^A-Za-z0-9_]+")


def words_of(line: str | None) -> list[str]:
    """The lowercased words of a line; empty tokens (Java keeps a leading one) dropped."""
    if not line:
        return []
    lowered = line.lower()
    split = ASCII_SPLIT.split if lowered.isascii() else UNICODE_SPLIT.split
    return [word for word in split(lowered) if word]


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
