"""The DSL: what users write."""

from topicflow.dsl.builder import StreamsBuilder
from topicflow.dsl.kstream import BranchedKStream, KStream
from topicflow.dsl.options import Branched, Consumed, Named, Produced, Repartitioned

__all__ = [
    "Branched",
    "BranchedKStream",
    "Consumed",
    "KStream",
    "Named",
    "Produced",
    "Repartitioned",
    "StreamsBuilder",
]
