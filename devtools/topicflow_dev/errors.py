"""The dev tooling's one error."""

from __future__ import annotations

from topicflow.errors import TopicflowError


class DevEnvError(TopicflowError):
    """The development services (`topicflow dev`) could not be started or stopped.

    A `TopicflowError`, so that the `topicflow` command prints it as one line.
    """
