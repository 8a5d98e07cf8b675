"""Seeded random cases: small inputs that reach the corners of Kafka Streams' semantics.

A few keys so that records of one key meet; null keys and values; empty
values; timestamps that mostly move forward, sometimes step back (out of
order, late for a window or not) and sometimes jump far ahead (closing
windows); wall-clock advances for punctuators. The same seed always gives the
same cases, whatever else the suite runs.
"""

from __future__ import annotations

import random
from typing import Any

from tests.conformance.topologies import TOPOLOGIES

Step = list[Any]  # [topic, key, value, timestamp] or ["wall", ms]
Case = dict[str, Any]

KEYS = ("a", "b", "c")
LETTERS = "ab"


def _key(rng: random.Random) -> str | None:
    return None if rng.random() < 0.1 else rng.choice(KEYS)


def _value(rng: random.Random) -> str | None:
    if rng.random() < 0.12:
        return None
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(0, 3)))


def _next_timestamp(rng: random.Random, now: int) -> int:
    roll = rng.random()
    if roll < 0.6:  # forward, often within one window
        return now + rng.choice((0, 0, 500, 1000, 1500, 2000, 3000))
    if roll < 0.85:  # out of order: some within grace, some late
        return max(0, now - rng.randint(0, 12_000))
    return now + rng.randint(4_000, 25_000)  # a jump that closes windows


def steps_for(rng: random.Random, inputs: tuple[str, ...], length: int) -> list[Step]:
    steps: list[Step] = []
    now = rng.randint(0, 3_000)
    for _ in range(length):
        if rng.random() < 0.08:
            steps.append(["wall", rng.choice((500, 1000, 3000, 5000))])
            continue
        now = _next_timestamp(rng, now)
        steps.append([rng.choice(inputs), _key(rng), _value(rng), now])
    return steps


def variants(names: list[str]) -> list[tuple[str, bool]]:
    """(topology, caching) pairs: stateful topologies run with the cache off and on."""
    out: list[tuple[str, bool]] = []
    for name in names:
        out.append((name, False))
        if TOPOLOGIES[name][1]:
            out.append((name, True))
    return out


def generate(seed: int, count: int, names: list[str]) -> list[Case]:
    cases: list[Case] = []
    for name, caching in variants(names):
        # One generator per variant, seeded from the seed and the variant's
        # name, so a case does not change when the catalogue grows.
        rng = random.Random(f"{seed}/{name}/{caching}")
        inputs = TOPOLOGIES[name][2]
        for i in range(count):
            length = rng.choice((2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 30))
            cases.append(
                {
                    "id": f"{name}/{'cache-on' if caching else 'cache-off'}/{i}",
                    "topology": name,
                    "caching": caching,
                    "steps": steps_for(rng, inputs, length),
                }
            )
    return cases
