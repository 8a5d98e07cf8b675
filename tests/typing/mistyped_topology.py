"""Each line marked `# error` must be refused by mypy: the types are carried, not Any."""

from __future__ import annotations

from topicflow import Consumed, Grouped, KStream, KTable, Produced, Serdes, StreamsBuilder


def build() -> None:
    lines: KStream[str, str] = StreamsBuilder().stream("lines")
    lengths: KStream[str, int] = lines.map_values(len)
    wrong_value: KStream[str, str] = lines.map_values(len)  # error
    wrong_key: KStream[str, int] = lengths.select_key(lambda _key, n: n)  # error
    wrong_pair: KStream[int, str] = lengths.map(lambda key, n: (key, n))  # error
    wrong_arity = lines.map_values(lambda key, line: line, with_key=False)  # error
    longs = Consumed.with_(Serdes.String(), Serdes.Long())
    wrong_serde: KStream[str, str] = StreamsBuilder().stream("counts", longs)  # error
    lines.to("out", Produced.with_(Serdes.String(), Serdes.Long()))  # error
    lines.group_by_key(Grouped.with_(Serdes.Long(), Serdes.String()))  # error
    table: KTable[str, str] = StreamsBuilder().table("names")
    table.filter(lambda _key, name: name + 1 > 0)  # error
    del wrong_value, wrong_key, wrong_pair, wrong_arity, wrong_serde
