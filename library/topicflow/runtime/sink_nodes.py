"""A sink node's per-record function: records to topics.

Built once per sink of a task (`build_sink`): it serializes the key and value
and hands the record to the producer, routing it by the sink's topic extractor
and partitioner, and sends what fails to the production handler (KIP-1065).
Under idempotent state it also stamps each output with its origin and position
(`_origin_stamper`, see runtime/replay.py). Everything a record needs is bound
in the closures at build time: nothing is looked up per record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from topicflow.brokers.base import Headers
from topicflow.config import StreamsConfig
from topicflow.runtime.error_handling import ErrorHandling
from topicflow.runtime.record_collector import RecordCollector
from topicflow.runtime.replay import (
    MAX_OUTPUTS_PER_RECORD,
    ORIGIN,
    ORIGIN_HEADER,
    SEQUENCE_BITS,
    output_position,
)
from topicflow.serdes import encode_str, resolve_serde
from topicflow.topology.nodes import Forward, RecordContext, RecordSender, SinkNode


def build_sink(
    node: SinkNode,
    task_id: str,
    config: StreamsConfig,
    sender: RecordSender,
    rc: RecordContext,
    resolve_topic: Callable[[str], str],
    errors: ErrorHandling,
) -> Forward:
    """The sink's per-record function: serialize, then hand to the producer.

    On the producer (a RecordCollector) it calls the client's `produce`
    itself, positionally, and falls back to `send` only when the queue is
    full; String serdes are not called at all, since the client encodes a
    str as UTF-8, which is what the serde would do. `rc` is the task's
    record context: the record in flight, whose timestamp and headers the
    output takes.
    """
    collector = sender if isinstance(sender, RecordCollector) else _Producing(sender)
    produce, on_delivery, send = collector.produce, collector.on_delivery, collector.send
    raw = isinstance(sender, RecordCollector)
    key_serde = node.key_serde or config.default_key_serde
    value_serde = resolve_serde(node.value_serde, config.default_value_serde)
    serialize_key = None if raw and key_serde.serialize is encode_str else key_serde.serialize
    serialize_value = None if raw and value_serde.serialize is encode_str else value_serde.serialize
    partitioner = node.partitioner
    extractor = node.topic_extractor
    partition_count = sender.partition_count
    stamp = _origin_stamper(rc, partition_count) if config.stamps_replays else None
    static_topic = resolve_topic(node.topic or "")
    production_failed = errors.production_failed
    node_name = node.name

    def failed(topic: str, key: Any, value: Any, error: Exception) -> None:
        # KIP-1065: serializing or producing this record failed (e.g. too large).
        production_failed(task_id, node_name, rc.message, topic, key, value, rc.timestamp, error)

    if extractor is None and partitioner is None and stamp is None:
        topic = static_topic

        def sink(key: Any, value: Any) -> None:
            try:
                if serialize_key is not None and key is not None:
                    key = serialize_key(key)
                if serialize_value is not None:
                    value = serialize_value(value)
                produce(topic, value, key, -1, on_delivery, None, rc.timestamp, rc.headers)
            except BufferError:
                send(topic, key, value, rc.timestamp, rc.headers, -1)
                return
            except Exception as error:
                failed(topic, key, value, error)
                return
            collector.sent += 1

        return sink

    def routed_sink(key: Any, value: Any) -> None:
        topic = static_topic if extractor is None else extractor(key, value, rc)
        partition = -1
        if partitioner is not None:
            partition = partitioner(topic, key, value, partition_count(topic))
        try:
            if serialize_key is not None and key is not None:
                key = serialize_key(key)
            if serialize_value is not None:
                value = serialize_value(value)
        except Exception as error:
            failed(topic, key, value, error)
            return
        headers = rc.headers
        if stamp is not None:
            headers, partition = stamp(topic, key, partition)
        try:
            produce(topic, value, key, partition, on_delivery, None, rc.timestamp, headers)
        except BufferError:
            send(topic, key, value, rc.timestamp, headers, partition)
            return
        except Exception as error:
            failed(topic, key, value, error)
            return
        collector.sent += 1

    return routed_sink


def _origin_stamper(
    rc: RecordContext, partition_count: Callable[[str], int]
) -> Callable[[str, bytes | None, int], tuple[Headers | None, int]]:
    """Idempotent state: (headers, partition) of an output, stamped with its origin
    and position (see runtime/replay.py)."""
    pack = ORIGIN.pack

    def stamp(topic: str, key_bytes: bytes | None, partition: int) -> tuple[Headers | None, int]:
        headers = rc.headers
        origin = rc.origin
        if origin is None:  # not derived from one input record: nothing to stamp
            return headers, partition
        ordinal = rc.ordinal
        if ordinal >= MAX_OUTPUTS_PER_RECORD:
            output_position(rc.position >> SEQUENCE_BITS, ordinal)  # raises
        rc.ordinal = ordinal + 1
        header = (ORIGIN_HEADER, pack(origin, rc.position + ordinal))
        headers = [header] if not headers else [*headers, header]
        if partition < 0 and key_bytes is None:
            # A keyless record goes where its origin says, not at random: a replay
            # must land in the partition of the first copy, whose reader knows it
            # (round-robin over a record's outputs).
            offset = rc.position >> SEQUENCE_BITS
            partition = (origin[0] + offset + ordinal) % partition_count(topic)
        return headers, partition

    return stamp


class _Producing:
    """A RecordSender other than the producer (the test driver's) seen as the
    sinks see a RecordCollector."""

    on_delivery: Callable[[Any, Any], None] | None = None

    def __init__(self, sender: RecordSender) -> None:
        self.send = sender.send
        self.sent = 0

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        _on_delivery: Callable[[Any, Any], None] | None,
        _callback: None,
        timestamp: int,
        headers: Headers | None,
    ) -> None:
        self.send(topic, key, value, timestamp, headers, partition)
