"""A topology as a typed user writes it: checked with `mypy --strict` (tests/unit/test_typing.py).

No `Any` here: each step's key and value types follow from the functions given, and
a source's from the serdes of its `Consumed`.
"""

from __future__ import annotations

from topicflow import (
    Consumed,
    Grouped,
    KStream,
    KTable,
    Processor,
    ProcessorContext,
    Produced,
    Record,
    Serdes,
    StreamsBuilder,
    Topology,
)


class Tag(Processor[str, int, str, str]):
    def init(self, context: ProcessorContext[str, str]) -> None:
        self.context = context

    def process(self, record: Record[str, int]) -> None:
        self.context.forward(record.with_value(f"#{record.value}"))


def words_of(line: str) -> list[str]:
    return line.lower().split()


def build() -> Topology:
    builder = StreamsBuilder()
    lines: KStream[str, str] = builder.stream("lines")
    lengths: KStream[str, int] = lines.map_values(len)
    keyed_by_length: KStream[int, int] = lengths.select_key(lambda _key, n: n)
    doubled: KStream[str, int] = lengths.map(lambda key, n: (key.upper(), n * 2))
    words: KStream[str, str] = lines.flat_map_values(words_of)
    prefixed: KStream[str, str] = lines.map_values(lambda key, line: key + line, with_key=True)
    pairs: KStream[str, int] = lines.flat_map(lambda key, line: [(key, len(line))])
    tagged: KStream[str, str] = lengths.process(Tag)
    keyed_by_length.to("by-length")
    doubled.to("doubled")
    words.merge(prefixed).merge(tagged).to("words")
    pairs.to("pairs")
    counts: KStream[str, int] = builder.stream(
        "counts", Consumed.with_(Serdes.String(), Serdes.Long())
    )
    counts.filter(lambda word, n: n > len(word)).to("frequent")
    rates = builder.stream(["rates"], Consumed.with_(None, Serdes.Double()).with_name("rates"))
    scaled: KStream[int, float] = rates.select_key(lambda _key, rate: round(rate))
    scaled.to("scaled")
    counts.to("counts-copy", Produced.with_(Serdes.String(), Serdes.Long()))
    lines.group_by_key(Grouped.with_(Serdes.String(), Serdes.String())).count()
    lines.group_by(lambda _key, line: len(line), Grouped.with_(Serdes.Integer(), None)).count()
    table: KTable[str, str] = builder.table("names")
    short: KStream[str, str] = table.filter(lambda _key, name: len(name) < 5).to_stream()
    short.to("short-names")
    return builder.build()
