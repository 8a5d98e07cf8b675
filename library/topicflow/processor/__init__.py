"""The Processor API."""

from topicflow.processor.api import (
    STREAM_TIME,
    WALL_CLOCK_TIME,
    Cancellable,
    Processor,
    ProcessorContext,
    ProcessorSupplier,
    PunctuationType,
    Record,
)

__all__ = [
    "STREAM_TIME",
    "WALL_CLOCK_TIME",
    "Cancellable",
    "Processor",
    "ProcessorContext",
    "ProcessorSupplier",
    "PunctuationType",
    "Record",
]
