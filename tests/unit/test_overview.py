"""The dashboard's aggregation: rates over a window, totals per topic, cards per pipeline."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from streamapp.overview import (
    CORE,
    RateWindow,
    TopicTotals,
    counter_totals,
    dead_letter_counts,
    overview,
    pipeline_of,
    topic_totals,
)


def row(
    topic: str, partition: int, end: int | None, committed: int | None, lag: int | None
) -> dict[str, Any]:
    return {"topic": topic, "partition": partition, "end": end, "committed": committed, "lag": lag}


def test_a_rate_spans_the_window_not_the_last_two_samples() -> None:
    rates = RateWindow(window=10.0)
    rates.add(0.0, {"t": 0})
    assert rates.rate("t") is None  # one sample: no rate yet
    # Committed offsets move in steps (one commit per interval): 0, 0, 30, 30.
    rates.add(1.0, {"t": 0})
    rates.add(2.0, {"t": 30})
    rates.add(3.0, {"t": 30})
    assert rates.rate("t") == pytest.approx(10.0)  # 30 over 3 s, not 0 (last two samples)


def test_old_samples_leave_the_window() -> None:
    rates = RateWindow(window=5.0)
    for second in range(0, 21):
        rates.add(float(second), {"t": 100 * second if second <= 10 else 1000 + second})
    # From second 15 (the window's start) to 20: 1 per second, the burst before is gone.
    assert rates.rate("t") == pytest.approx(1.0)


def test_a_total_that_goes_down_restarts_instead_of_a_negative_rate() -> None:
    rates = RateWindow()
    rates.add(0.0, {"t": 500})
    rates.add(1.0, {"t": 600})
    rates.add(2.0, {"t": 10})  # the embedded broker restarted and forgot its topics
    assert rates.rate("t") is None
    rates.add(3.0, {"t": 20})
    assert rates.rate("t") == pytest.approx(10.0)


def test_topics_belong_to_the_pipeline_named_before_the_dot() -> None:
    pipelines = ["licenses", "tasks"]
    assert pipeline_of("licenses.inbound", pipelines) == "licenses"
    assert pipeline_of("tasks.events", pipelines) == "tasks"
    assert pipeline_of("streamapp.dead-letters", pipelines) == CORE
    assert pipeline_of("licensesX.inbound", pipelines) == CORE


def test_topic_totals_sum_partitions_and_count_lag_only_where_the_group_reads() -> None:
    rows = [
        row("licenses.inbound", 0, 10, 7, 3),
        row("licenses.inbound", 1, 5, None, 5),  # never committed: everything counts
        row("licenses.updates", 0, 40, None, 40),  # an output topic: no one in the group reads it
    ]
    totals = topic_totals(rows, consumed={"licenses.inbound"})
    assert totals["licenses.inbound"] == TopicTotals(partitions=2, end=15, committed=7, lag=8)
    assert totals["licenses.updates"] == TopicTotals(partitions=1, end=40, committed=None, lag=None)


def test_dead_letters_are_counted_by_pipeline_and_reason_most_first() -> None:
    pairs = [("licenses", "invalid")] * 3 + [("tasks", "rejected")] + [("licenses", "rejected")] * 3
    assert dead_letter_counts(Counter(pairs)) == [
        {"pipeline": "licenses", "reason": "invalid", "count": 3},
        {"pipeline": "licenses", "reason": "rejected", "count": 3},
        {"pipeline": "tasks", "reason": "rejected", "count": 1},
    ]


def test_counter_totals_read_a_labelled_counter() -> None:
    counter = PromCounter("test_events_in", "x", ["pipeline", "agent"], registry=CollectorRegistry())
    counter.labels("licenses", "licenses.records").inc(7)
    counter.labels("tasks", "tasks.events").inc(2)
    assert counter_totals(counter) == {("licenses", "licenses.records"): 7.0, ("tasks", "tasks.events"): 2.0}


def test_cards_add_up_agents_topics_lag_and_dead_letters_per_pipeline() -> None:
    topics = topic_totals(
        [
            row("licenses.inbound", 0, 100, 90, 10),
            row("licenses.inbound", 1, 50, 48, 2),
            row("tasks.events", 0, 7, 7, 0),
            row("streamapp.dead-letters", 0, 4, None, 4),
        ],
        consumed={"licenses.inbound", "tasks.events"},
    )
    topic_rates, agent_rates = RateWindow(), RateWindow()
    topic_rates.add(0.0, {("licenses.inbound", "end"): 0, ("licenses.inbound", "committed"): 0})
    topic_rates.add(2.0, {("licenses.inbound", "end"): 150, ("licenses.inbound", "committed"): 138})
    before: dict[tuple[str, ...], float] = {
        ("licenses", "licenses.records", "in"): 0.0,
        ("licenses", "licenses.records", "out"): 0.0,
        ("licenses", "licenses.updates-sink", "in"): 0.0,
        ("licenses", "licenses.updates-sink", "out"): 0.0,
        ("tasks", "tasks.events", "in"): 0.0,
        ("tasks", "tasks.events", "out"): 0.0,
    }
    after: dict[tuple[str, ...], float] = {
        **before,
        ("licenses", "licenses.records", "in"): 100.0,
        ("licenses", "licenses.records", "out"): 96.0,
        ("licenses", "licenses.updates-sink", "in"): 10.0,
        ("licenses", "licenses.updates-sink", "out"): 10.0,
    }
    agent_rates.add(0.0, before)
    agent_rates.add(4.0, after)
    letters = [{"pipeline": "licenses", "reason": "invalid", "count": 4}]

    cards = {
        c["name"]: c
        for c in overview(["licenses", "tasks"], topics, topic_rates, after, agent_rates, letters)
    }

    licenses = cards["licenses"]
    assert licenses["in_per_s"] == pytest.approx(27.5)  # (100 + 10) / 4 s, both agents
    assert licenses["out_per_s"] == pytest.approx(26.5)
    assert licenses["lag"] == 12
    assert licenses["dead_letters"] == 4
    [inbound] = licenses["topics"]
    assert (inbound["end"], inbound["committed"], inbound["lag"]) == (150, 138, 12)
    assert (inbound["produced_per_s"], inbound["consumed_per_s"]) == (75.0, 69.0)
    assert {a["name"]: a["events_in"] for a in licenses["agents"]} == {
        "licenses.records": 100,
        "licenses.updates-sink": 10,
    }
    assert cards["tasks"]["in_per_s"] == 0.0
    assert cards["tasks"]["lag"] == 0
    # The dead-letter topic is the core's, and nobody in the group reads it: no lag.
    assert [t["name"] for t in cards[CORE]["topics"]] == ["streamapp.dead-letters"]
    assert cards[CORE]["lag"] is None


def test_the_core_card_is_left_out_when_it_has_nothing() -> None:
    cards = overview(["licenses"], {}, RateWindow(), {}, RateWindow(), [])
    assert [c["name"] for c in cards] == ["licenses"]
    assert cards[0]["lag"] is None
    assert cards[0]["in_per_s"] is None
