"""Text Processor: `textlines` -> lowercased words -> `words`.

The blog's Java snippet, ported line by line:

    builder.stream(f"{prefix}textlines")
        .flat_map_values(lambda line: words_of(line))
        .to(f"{prefix}words")
"""

from __future__ import annotations

import re

from services.service import Service
from topicflow import Serdes, StreamsBuilder, Topology

# Java's `\W+` with UNICODE_CHARACTER_CLASS. Python's `\w` is Unicode-aware
# already but, unlike Java's, excludes combining marks and the joiners, which
# would cut "café" written with a combining accent in two: keep them in words.
WORD_SPLIT = re.compile(
    r"[^\w\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\u200c\u200d]+"
)


def words_of(line: str | None) -> list[str]:
    """The lowercased words of a line; empty tokens (Java keeps a leading one) dropped."""
    if not line:
        return []
    return [word for word in WORD_SPLIT.split(line.lower()) if word]


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
    settings={
        # The Java example's settings: string keys and values, 1 s commits.
        "default_key_serde": Serdes.String(),
        "default_value_serde": Serdes.String(),
        "commit_interval_ms": 1000,
    },
)


def main(argv: list[str] | None = None) -> int:
    return SERVICE.main(argv, description="textlines -> lowercased words -> words")


if __name__ == "__main__":
    raise SystemExit(main())
