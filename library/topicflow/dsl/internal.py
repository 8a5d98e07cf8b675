"""The DSL's internal graph builder: Kafka Streams' InternalStreamsBuilder.

A `StreamsBuilder` owns one `InternalStreamsBuilder`, and every DSL object made
from it (a KStream, a KTable, a grouped, windowed or split stream) holds that
same one. It owns the topology under construction and the counter of generated
names (`KSTREAM-FILTER-0000000001`), adds the nodes the DSL objects ask for, and
creates the DSL object each operation returns: `KStream.group_by` asks it for a
KGroupedStream, `KTable.to_stream` for a KStream, and so on.

That is what keeps the DSL free of import cycles: this module imports every DSL
class, and the DSL classes import this one, and each other, only for their
annotations; at run time they reach each other through the instance they hold.
"""

from __future__ import annotations

import re
from typing import Any

from topicflow.dsl.aggregations import Aggregator
from topicflow.dsl.changes import EmitStrategy, OldValues
from topicflow.dsl.cogrouped import CogroupedKStream
from topicflow.dsl.global_ktable import GlobalKTable
from topicflow.dsl.joins import ValueCompute
from topicflow.dsl.kgrouped import KGroupedStream, TimeWindowedKStream
from topicflow.dsl.kgrouped_table import KGroupedTable
from topicflow.dsl.kstream import BranchedKStream, KStream
from topicflow.dsl.ktable import KTable
from topicflow.dsl.operations import drop_null_keys_node, pass_through_node
from topicflow.dsl.options import Consumed, Grouped, Materialized, Named
from topicflow.dsl.session_windows import SessionWindowedKStream
from topicflow.dsl.sliding_windows import SlidingWindowedKStream
from topicflow.dsl.table_joins import ValueGetter
from topicflow.dsl.table_operations import SourceStore, TableSource, table_source_node
from topicflow.dsl.windows import SessionWindows, SlidingWindows, TimeWindows
from topicflow.serdes import Serde, Serdes
from topicflow.state.stores import StoreSpec
from topicflow.topology.nodes import NodeFactory, ProcessorNode, SinkNode, StreamPartitioner
from topicflow.topology.topology import InternalTopic, Topology

# A name Kafka Streams generated: its repartition nodes keep generated names too.
_GENERATED_NAME = re.compile(r"KSTREAM.*-[0-9]{10}")


class InternalStreamsBuilder:
    """The topology a DSL builds, the names it generates, and the DSL objects it returns."""

    # For KStream.join's dispatch on the kind of table, without importing it.
    global_ktable_type = GlobalKTable

    def __init__(self) -> None:
        self.topology = Topology()
        self._index = 0

    def _store_name(self, prefix: str) -> str:
        """Kafka Streams' generated store name, `<prefix>STATE-STORE-<10-digit index>`."""
        name = f"{prefix}STATE-STORE-{self._index:010d}"
        self._index += 1
        return name

    def node_name(self, kind: str, named: Named | str | None) -> str:
        """The given name, or Kafka Streams' generated `KSTREAM-<KIND>-<10-digit index>`."""
        if named is not None:
            return named.name if isinstance(named, Named) else named
        prefix = "" if kind.startswith(("KTABLE-", "COGROUPKSTREAM-")) else "KSTREAM-"
        name = f"{prefix}{kind}-{self._index:010d}"
        self._index += 1
        return name

    def add_processor(self, name: str, factory: NodeFactory, *parents: str) -> None:
        self.topology.add_node(ProcessorNode(name, factory, list(parents)))

    # -- sources -----------------------------------------------------------------------

    def stream(self, topics: list[str], consumed: Consumed) -> KStream[Any, Any]:
        name = consumed.name or self.node_name("SOURCE", None)
        self._add_source(name, topics, consumed)
        return self.new_stream(name)

    def table(self, topic: str, consumed: Consumed, materialized: Materialized | None) -> KTable:
        # As Kafka Streams: a store name is generated first, materialized or not
        # (a join may materialize the table later), then the source's names.
        generated = self._store_name(f"{topic}-")
        source = consumed.name or self.node_name("SOURCE", None)
        self._add_source(source, [topic], consumed)
        name = self.node_name("KTABLE-SOURCE", None)
        return self._table_source(
            name,
            source,
            generated,
            materialized,
            (materialized and materialized.key_serde) or consumed.key_serde,
            (materialized and materialized.value_serde) or consumed.value_serde,
        )

    def to_table(
        self,
        parent: str,
        key_changed: bool,
        named: Named | str | None,
        materialized: Materialized | None,
    ) -> KTable:
        """`KStream.to_table`: Kafka Streams' KTableSource on a stream."""
        name = self.node_name("TOTABLE", named)
        generated = self._store_name("KSTREAM-TOTABLE-")
        key_serde = materialized.key_serde if materialized else None
        value_serde = materialized.value_serde if materialized else None
        if key_changed:
            # Each key's records must reach the partition that holds its row.
            parent = self.through_repartition_topic(
                parent, name, key_serde, value_serde, None, drop_null_keys=True
            )
        return self._table_source(name, parent, generated, materialized, key_serde, value_serde)

    def _table_source(
        self,
        name: str,
        parent: str,
        generated: str,
        materialized: Materialized | None,
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
    ) -> KTable:
        """A KTableSource node `name` below `parent`; its store if `materialized`
        (named, or the `generated` name), else none until a join asks for one."""
        store = None if materialized is None else (materialized.store_name or generated)
        # Only a materialized table knows a key's old value, to send it below (one
        # materialized later, as `group_by` or a join forces, takes the cell then).
        old_values = OldValues()
        source_store = SourceStore(store)
        self.add_processor(name, table_source_node(source_store, old_values), parent)
        if materialized is not None and store is not None:
            spec = _table_store(store, key_serde, value_serde, materialized)
            self.topology.add_state_store(spec, name)
        return self.new_table(
            name,
            store_name=store,
            old_values=old_values if store is not None else None,
            source=TableSource(generated, source_store, key_serde, value_serde, old_values),
        )

    def materialize_source(self, table_node: str, source: TableSource) -> str:
        """The store of a table read from records that was not materialized, made now:
        a join looks its values up (Kafka Streams' KTableSource.materialize())."""
        if source.store.name is None:
            name = source.generated_store
            spec = _table_store(name, source.key_serde, source.value_serde, None)
            self.topology.add_state_store(spec, table_node)
            source.store.name = name
        return source.store.name

    def _add_source(self, name: str, topics: list[str], consumed: Consumed) -> None:
        self.topology.add_source(
            name,
            *topics,
            key_serde=consumed.key_serde,
            value_serde=consumed.value_serde,
            timestamp_extractor=consumed.timestamp_extractor,
        )

    def through_repartition_topic(
        self,
        parent: str,
        base: str,
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        partitions: int | None,
        partitioner: StreamPartitioner | None = None,
        drop_null_keys: bool = False,
        keep_null_keys: bool = False,
    ) -> str:
        """Write `parent`'s records to the internal topic `{application_id}-{base}-repartition`
        and read them back; the name of the source that reads them.

        Records are then partitioned by their current key, so downstream tasks
        see every record of a key in one partition. `keep_null_keys`: the filter
        node is there but lets null keys through (Kafka Streams' repartition
        before a left join, with a table or a stream, and an outer join).
        """
        topic = f"{base}-repartition"
        # Kafka Streams' createRepartitionedSource: it generates the sink's, the
        # filter's and the source's names (three indices) and keeps them when the
        # topic's name is itself generated (`KSTREAM-...-<10 digits>`); otherwise
        # the names follow the topic's, the generated ones discarded.
        if _GENERATED_NAME.fullmatch(base):
            sink_name, filter_name, source = (
                f"KSTREAM-{kind}-{self._index + i:010d}"
                for i, kind in enumerate(("SINK", "FILTER", "SOURCE"))
            )
        else:
            sink_name, filter_name, source = (f"{topic}-{s}" for s in ("sink", "filter", "source"))
        self._index += 3
        self.topology.add_internal_topic(InternalTopic(topic, "repartition", partitions))
        upstream = parent
        if drop_null_keys:
            # A null key has no partition: drop it before the topic (Kafka does too).
            upstream = filter_name
            node = pass_through_node() if keep_null_keys else drop_null_keys_node()
            self.add_processor(upstream, node, parent)
        sink = SinkNode(sink_name, [upstream], topic, None, key_serde, value_serde, partitioner)
        self.topology.add_node(sink)
        self.topology.add_source(source, topic, key_serde=key_serde, value_serde=value_serde)
        return source

    def copartition(self, *node_names: str) -> None:
        """Require the source topics upstream of `node_names` to be co-partitioned.

        Every join calls it with its two sides' nodes (after any repartition), as
        Kafka Streams' `ensureCopartitionWith`: stream-table, stream-stream,
        table-table and cogroup alike, e.g. `graph.copartition(this_node, other_node)`.
        At start the user topics of a group must have one partition count (else a
        TopologyError names each topic and its count), and its repartition topics
        are created with that count (runtime/internal_topics.py).
        """
        self.topology.copartition(*node_names)

    # -- global tables -------------------------------------------------------------------

    def global_table(
        self, topic: str, consumed: Consumed, materialized: Materialized | None
    ) -> GlobalKTable:
        """Kafka Streams' globalTable: a store name first (generated unless named), then
        the source `<name>-source` and the processor `<name>` when Consumed names
        them; a generated index is used up for each either way, as Kafka does."""
        named = materialized.store_name if materialized is not None else None
        store = named or self._store_name(f"{topic}-")
        generated_source = self.node_name("SOURCE", None)
        generated_processor = self.node_name("KTABLE-SOURCE", None)
        source = f"{consumed.name}-source" if consumed.name else generated_source
        processor = consumed.name or generated_processor
        key_serde = (materialized and materialized.key_serde) or consumed.key_serde
        value_serde = (materialized and materialized.value_serde) or consumed.value_serde
        spec = StoreSpec(
            store,
            "key_value",
            key_serde,
            value_serde,
            persistent=bool(materialized and materialized.persistent),
            # The topic is the store's log; the store is read, never written, by
            # the tasks: no changelog, and no cache to flush.
            logging=False,
            caching=False,
            timestamped=True,
        )
        self.topology.add_global_store(
            spec,
            source,
            topic,
            processor,
            key_serde=consumed.key_serde,
            value_serde=consumed.value_serde,
            timestamp_extractor=consumed.timestamp_extractor,
        )
        return GlobalKTable(store, named)

    # -- the DSL objects operations return ---------------------------------------------

    def new_stream(self, node_name: str, key_changed: bool = False) -> KStream[Any, Any]:
        return KStream(self, node_name, key_changed)

    def new_split(
        self, parent: str, key_changed: bool, node_name: str
    ) -> BranchedKStream[Any, Any]:
        return BranchedKStream(self, parent, key_changed, node_name)

    def new_table(
        self,
        node_name: str,
        *,
        store_name: str | None = None,
        windows: TimeWindows | None = None,
        old_values: OldValues | None = None,
        emit: EmitStrategy | None = None,
        parent: KTable | None = None,
        source: TableSource | None = None,
        compute: ValueCompute | None = None,
        serdes_of_parent: bool = False,
        join_sides: tuple[KTable, KTable] | None = None,
        join_view: ValueGetter | None = None,
    ) -> KTable:
        return KTable(
            self,
            node_name,
            store_name,
            windows,
            old_values,
            emit,
            parent,
            source,
            compute,
            serdes_of_parent=serdes_of_parent,
            join_sides=join_sides,
            join_view=join_view,
        )

    def new_grouped_table(self, node_name: str, grouped: Grouped) -> KGroupedTable:
        return KGroupedTable(self, node_name, grouped)

    def new_grouped_stream(
        self, node_name: str, key_changed: bool, grouped: Grouped
    ) -> KGroupedStream:
        return KGroupedStream(self, node_name, key_changed, grouped)

    def new_time_windowed_stream(
        self, grouped: KGroupedStream, windows: TimeWindows
    ) -> TimeWindowedKStream:
        return TimeWindowedKStream(self, grouped, windows)

    def new_sliding_windowed_stream(
        self, grouped: KGroupedStream, windows: SlidingWindows
    ) -> SlidingWindowedKStream:
        return SlidingWindowedKStream(self, grouped, windows)

    def new_session_windowed_stream(
        self, grouped: KGroupedStream, windows: SessionWindows
    ) -> SessionWindowedKStream:
        return SessionWindowedKStream(self, grouped, windows)

    def new_cogrouped_stream(
        self, grouped: KGroupedStream, aggregator: Aggregator
    ) -> CogroupedKStream:
        return CogroupedKStream(self, grouped, aggregator)

    # -- table-table joins ---------------------------------------------------------------

    def add_table_store(self, name: str, node: str, materialized: Materialized) -> None:
        """The store of a materialized join table, as a table read from records keeps
        its own (Kafka Streams' KeyValueStoreMaterializer)."""
        spec = _table_store(name, materialized.key_serde, materialized.value_serde, materialized)
        self.topology.add_state_store(spec, node)

    # -- foreign-key joins -----------------------------------------------------------------

    def through_internal_topic(
        self,
        parents: list[str],
        topic: str,
        sink: str,
        source: str,
        sink_key_serde: Serde[Any] | None,
        source_key_serde: Serde[Any] | None,
        partitioner: StreamPartitioner | None = None,
    ) -> str:
        """A foreign-key join's subscription or response topic (`{application_id}-{topic}`):
        `parents` write their records (values already bytes) there through `sink`,
        `source` reads them back, in the partitions of the tables it meets."""
        # Sized as the table its reader meets: the join registers that co-partition group.
        self.topology.add_internal_topic(InternalTopic(topic, "repartition", None))
        self.topology.add_node(
            SinkNode(sink, parents, topic, None, sink_key_serde, Serdes.Bytes(), partitioner)
        )
        self.topology.add_source(
            source, topic, key_serde=source_key_serde, value_serde=Serdes.Bytes()
        )
        return source

    def add_subscription_store(self, name: str, node: str) -> None:
        """A foreign-key join's subscriptions, by (foreign key, primary key) bytes; no
        cache, as Kafka Streams' SubscriptionStoreFactory."""
        spec = StoreSpec(
            name,
            "key_value",
            Serdes.Bytes(),
            Serdes.Bytes(),
            caching=False,
            timestamped=True,
            changelog_config={"cleanup.policy": "compact"},
        )
        self.topology.add_state_store(spec, node)

    def foreign_key_join_result(
        self, name: str, parent: str, store: str, materialized: Materialized | None
    ) -> KTable:
        """A foreign-key join's result table: Kafka Streams' KTableSource on the joined
        responses, materialized in `store` when asked, else when a join needs it."""
        key_serde = materialized.key_serde if materialized else None
        value_serde = materialized.value_serde if materialized else None
        return self._table_source(name, parent, store, materialized, key_serde, value_serde)


def _table_store(
    name: str,
    key_serde: Serde[Any] | None,
    value_serde: Serde[Any] | None,
    materialized: Materialized | None,
) -> StoreSpec:
    """The timestamped key-value store of a table read from records."""
    settings: dict[str, Any] = {}
    if materialized is not None:
        settings = {
            "persistent": materialized.persistent,
            "logging": materialized.logging,
            "caching": materialized.caching,
        }
    return StoreSpec(
        name,
        "key_value",
        key_serde,
        value_serde,
        timestamped=True,
        changelog_config={"cleanup.policy": "compact"},
        **settings,
    )
