"""The store a processor sees: an inner store behind a record cache and a changelog.

Writes go to the cache (Python objects, one entry per key) and reach the inner
store, the changelog topic and the flush listener (which forwards the new value
downstream, for DSL aggregations) only when the cache is flushed: at every
commit, or when it is full. Repeated updates to a key between commits therefore
cost one serialization, one changelog record and one downstream record, as with
Kafka Streams' `statestore.cache.max.bytes`. Without a cache (size 0), every
write goes through at once.

One module per part: the changelog writes (`changelog`), what every cached
store shares (`cached_store`), and one module per store kind
(`cached_key_value`, `cached_window`, `cached_session`).
"""
