"""The runtime: KafkaStreams, stream workers, tasks, the commit cycle."""
