"""The dashboard's numbers, computed from samples: pure functions and a small rate window.

Inputs come from three places, each the one that knows: the agents' Prometheus
counters (events in/out of this worker), the broker (end and committed offsets
of the consumer group, so lag and throughput of every worker together) and the
dead-letter topic. Nothing here does I/O, so all of it is unit-tested.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

# The pipeline of topics no pipeline owns (the dead-letter topic, changelogs).
CORE = "core"


def counter_totals(counter: Counter) -> dict[tuple[str, ...], float]:
    """A labelled counter's current values, by label values (read through the public `collect`)."""
    totals: dict[tuple[str, ...], float] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                totals[tuple(sample.labels.values())] = sample.value
    return totals


@dataclass
class RateWindow:
    """Per-second rates of growing totals, over the samples of the last `window` seconds.

    A window rather than the last two samples: committed offsets move once per
    commit interval, so a two-sample rate would jump between zero and a spike.
    A total that went down (a restarted counter, a broker that forgot its topics)
    restarts that key's history instead of showing a negative rate.
    """

    window: float = 10.0
    _samples: dict[Hashable, deque[tuple[float, float]]] = field(default_factory=dict)

    def add(self, now: float, totals: Mapping[Any, float]) -> None:
        for key, value in totals.items():
            history = self._samples.setdefault(key, deque())
            if history and value < history[-1][1]:
                history.clear()
            history.append((now, value))
            # Keep one sample at or before the window's start, so the rate spans the whole window.
            while len(history) > 2 and history[1][0] <= now - self.window:
                history.popleft()

    def rate(self, key: Hashable) -> float | None:
        """Units per second across the window; None until two samples exist."""
        history = self._samples.get(key)
        if not history or len(history) < 2:
            return None
        (t0, v0), (t1, v1) = history[0], history[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else None


def pipeline_of(topic: str, pipelines: Iterable[str]) -> str:
    """Topics are named `<pipeline>.<what>`; anything else belongs to the core."""
    head = topic.split(".", 1)[0]
    return head if head in set(pipelines) else CORE


@dataclass(frozen=True)
class TopicTotals:
    partitions: int
    end: int
    committed: int | None  # None: the group has never committed on this topic
    lag: int | None  # None: the group does not consume the topic


def topic_totals(rows: Iterable[Mapping[str, Any]], consumed: Iterable[str]) -> dict[str, TopicTotals]:
    """Partition rows (`web.core.partition_lags`) summed per topic.

    Lag counts only for topics the group consumes: an output topic nobody in the
    group reads has an end offset but no lag.
    """
    reading = set(consumed)
    acc: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        acc.setdefault(row["topic"], []).append(row)
    result: dict[str, TopicTotals] = {}
    for topic, parts in sorted(acc.items()):
        committed = [row["committed"] for row in parts if row["committed"] is not None]
        result[topic] = TopicTotals(
            partitions=len(parts),
            end=sum(row["end"] or 0 for row in parts),
            committed=sum(committed) if committed else None,
            lag=sum(row["lag"] or 0 for row in parts) if topic in reading else None,
        )
    return result


def dead_letter_counts(counts: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
    """Counts by (pipeline, reason), most frequent first."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"pipeline": p, "reason": r, "count": n} for (p, r), n in ordered]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _card(name: str) -> dict[str, Any]:
    return {"name": name, "topics": [], "agents": [], "in_per_s": None, "out_per_s": None, "dead_letters": 0}


def overview(
    pipelines: Sequence[str],
    topics: Mapping[str, TopicTotals],
    topic_rates: RateWindow,
    agent_totals: Mapping[tuple[str, ...], float],
    agent_rates: RateWindow,
    dead_letters: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """One entry per pipeline (and the core): its topics and agents with totals and rates.

    `agent_totals` is keyed by (pipeline, agent, "in"|"out"); `topic_rates` by
    (topic, "end"|"committed").
    """
    names = [*pipelines, CORE]
    cards = {name: _card(name) for name in names}
    for topic, totals in topics.items():
        cards[pipeline_of(topic, pipelines)]["topics"].append(
            {
                "name": topic,
                "partitions": totals.partitions,
                "end": totals.end,
                "committed": totals.committed,
                "lag": totals.lag,
                "produced_per_s": _round(topic_rates.rate((topic, "end"))),
                "consumed_per_s": _round(topic_rates.rate((topic, "committed"))),
            }
        )
    agents = sorted({(key[0], key[1]) for key in agent_totals})
    for pipeline, agent in agents:
        card = cards.setdefault(pipeline, _card(pipeline))
        rate_in = agent_rates.rate((pipeline, agent, "in"))
        rate_out = agent_rates.rate((pipeline, agent, "out"))
        card["agents"].append(
            {
                "name": agent,
                "events_in": int(agent_totals.get((pipeline, agent, "in"), 0)),
                "events_out": int(agent_totals.get((pipeline, agent, "out"), 0)),
                "in_per_s": _round(rate_in),
                "out_per_s": _round(rate_out),
            }
        )
        for side, rate in (("in_per_s", rate_in), ("out_per_s", rate_out)):
            if rate is not None:
                card[side] = round((card[side] or 0.0) + rate, 2)
    for row in dead_letters:
        if row["pipeline"] in cards:
            cards[row["pipeline"]]["dead_letters"] += row["count"]
    for card in cards.values():
        lags = [t["lag"] for t in card["topics"] if t["lag"] is not None]
        card["lag"] = sum(lags) if lags else None
    return [card for card in cards.values() if card["name"] != CORE or card["topics"] or card["agents"]]
