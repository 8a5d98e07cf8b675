"""A topology as a typed user writes it: checked with `mypy --strict` (tests/unit/test_typing.py).

No `Any` here: each step's key and value types follow from the functions given.
"""

from __future__ import annotations

from topicflow import KStream, Processor, ProcessorContext, Record, StreamsBuilder, Topology


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
    return builder.build()
