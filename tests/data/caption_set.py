"""The small English caption set that the translation tests translate."""

from __future__ import annotations

ENGLISH = {
    ("v0", "train"): ["a man is cooking pasta", "someone cooks pasta in a pan"],
    ("v1", "train"): ["a dog runs in the park", "a man is cooking pasta"],  # a duplicate text
    ("v2", "train"): ["two girls sing a song", "girls are singing"],
    ("v3", "train"): ["a woman is talking about cars", "   "],  # a blank caption
    ("v4", "train"): ["people dance on a stage", "a crowd dances"],
    ("t0", "test"): ["a cat sleeps on a sofa"],
    ("t1", "test"): ["a boy plays football in the rain"],
}
CORPUS = [t for caps in ENGLISH.values() for t in caps] + ["der die das le la les"]
