"""The example system of "Kafka Streams on Heroku", built with topicflow.

Each service is its own worker process, connected to the others only through
Kafka topics: the Text Processor (`textlines` -> `words`), and the generators
that feed it.
"""
