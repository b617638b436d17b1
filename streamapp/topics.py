"""Declaring a pipeline's topics so Faust creates them, with our partition count."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamapp.typing import Topic

if TYPE_CHECKING:
    from streamapp.host import Host


def pipeline_topic(app: Host, name: str) -> Topic:
    """A raw-bytes topic that Faust creates (internal) with STREAMAPP_TOPIC_PARTITIONS partitions.

    Leaving creation to the broker's auto-create would use the broker's default
    partition count, and a table's source topic must match its changelog's or
    Faust refuses to start (PartitionsMismatch); clusters often disable
    auto-create altogether.
    """
    topic: Topic = app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        internal=True,
        partitions=app.conf.topic_partitions,
    )
    # `streamapp topics` lists (and the deploy step creates) exactly these: one
    # source of truth for the topic names, the pipelines' own declarations.
    registry: dict[str, Topic] | None = getattr(app, "declared_topics", None)
    if registry is not None:
        registry[name] = topic
    return topic
