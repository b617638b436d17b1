"""The chat bot: "a customer needs help" requests on the topics the default routing table knows."""

from __future__ import annotations

import json
import random

import aiohttp

from simulator.sending import Tally, post

QUESTIONS = {
    "sales": (
        "Wants a quote for 40 seats of SKU2 before the end of the quarter.",
        "Asks whether the enterprise plan includes single sign-on.",
        "Would like a demo for their operations team next week.",
    ),
    "pricing": (
        "Asks why the invoice shows two charges for March.",
        "Wants to know the price difference between monthly and yearly billing.",
        "Asks for a discount for a non-profit organisation.",
    ),
}
PEOPLE = (("Ada Byron", "ada@example.com"), ("Linus Pauling", "linus@example.org"), ("Mae Jemison", None))


def request_body(rng: random.Random) -> tuple[str, bytes]:
    topic = rng.choice(sorted(QUESTIONS))
    name, email = rng.choice(PEOPLE)
    body = {
        "topic": topic,
        "description": rng.choice(QUESTIONS[topic]),
        "customer": {"name": name, "email": email},
        "conversation_url": f"https://chat.example.com/conversations/{rng.randrange(10**6)}",
        "language": "en",
    }
    return topic, json.dumps(body).encode()


async def ask(
    session: aiohttp.ClientSession, ingest: str, rng: random.Random, tally: Tally, token: str | None
) -> None:
    topic, body = request_body(rng)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, content = await post(session, f"{ingest}/assistance", body, headers)
    label = topic
    if status == 202:
        label = f"{topic} {json.loads(content).get('request_id', '')}"
    tally.count(status, label)
