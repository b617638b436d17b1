"""`streamapp topics`: the app's own topic list, so the deploy step creating topics cannot drift."""

from __future__ import annotations

import pytest

from streamapp.app import create_app
from streamapp.deadletters import DEAD_LETTER_TOPIC
from streamapp.settings import Settings
from streamapp.topics_cli import declared_topics, main_topics

SETTINGS = Settings(broker_url="kafka://127.0.0.1:1", database_url="postgresql://u@127.0.0.1:1/db")


def test_every_consumed_and_produced_topic_is_declared() -> None:
    app = create_app(SETTINGS)
    listed = declared_topics(app)
    names = {topic.name for topic in listed}
    # Every topic an agent reads (what Faust subscribes to) is in the list.
    for agent in app.agents.values():
        for name in agent.channel.topics:
            assert name in names, f"agent {agent.name} reads {name}, which `streamapp topics` does not list"
    # Written but read by no agent: still created up front.
    assert DEAD_LETTER_TOPIC in names
    # The changelogs are listed as such (Faust creates them, compacted).
    changelogs = {t.name for t in listed if t.kind == "changelog"}
    assert changelogs == set(app.tables.changelog_topics)
    assert changelogs
    assert not changelogs & {t.name for t in listed if t.kind == "pipeline"}
    # Many more than the four the chart used to list.
    assert len([t for t in listed if t.kind == "pipeline"]) > 4


def test_list_prints_the_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_topics(SETTINGS, create=False) == 0
    out = capsys.readouterr().out.splitlines()
    assert "licenses.inbound\tpipeline" in out
    assert f"{DEAD_LETTER_TOPIC}\tpipeline" in out
    assert any(line.endswith("\tchangelog") for line in out)
