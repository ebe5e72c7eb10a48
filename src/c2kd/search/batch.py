"""A batch of queries answered into a JSON-lines file: each answer appended as it comes, a re-run resumes.

Each line of the file is one answer, ``{"n": N, "query": ..., "lang": ..., "took_ms": ..., "results": [...]}``,
where ``N`` counts the batch's queries from 0 in the order of the queries file. A line is written whole and
flushed once its query is answered, so a batch stopped by Ctrl-C or a kill keeps every answer found before;
running the same command again reads the file, drops a last line cut short by a kill, and answers only the
queries it lacks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from c2kd.errors import DataError
from c2kd.index import MetadataFilter
from c2kd.io import json_text, output_errors
from c2kd.search.query import Query

#: the fields every answer line has (how a file this module wrote is told from others)
LINE_FIELDS = ("n", "query", "lang", "results")
#: seconds between two syncs of the output file to the disk (a line is flushed to the system at once)
SYNC_EVERY = 5.0


def answered(path: Path, queries: Sequence[Query]) -> set[int]:
    """The numbers of ``queries`` that ``path`` already answers (empty when it does not exist or is empty).

    A last line without its newline (the write of a killed run) is cut off the file. A file that holds
    anything else than this module's answers to these very queries is refused: it is never written to.
    """
    if not path.exists():
        return set()
    if not path.is_file():
        raise DataError(f"--out {path} is a folder; give a file name, e.g. {path / 'answers.jsonl'}")
    data = path.read_bytes()
    whole = data[:data.rfind(b"\n") + 1]
    done: set[int] = set()
    for number, raw in enumerate(whole.splitlines(), start=1):
        row = _answer(raw)
        if row is None:
            raise DataError(f"--out {path} is not the answers of `c2kd search --queries` (line {number} is not "
                            "one); give another file, or move this one away")
        n = row["n"]
        if n >= len(queries) or (queries[n].text, queries[n].lang) != (row["query"], row["lang"]):
            raise DataError(f"--out {path}:{number} answers another query than query {n + 1} of this batch "
                            f"({row['query']!r}); the queries file changed since: give another --out file")
        done.add(n)
    if len(whole) != len(data):  # the last answer of a killed run, cut short: dropped, answered again
        with output_errors(path), open(path, "r+b") as fh:
            fh.truncate(len(whole))
    return done


def _answer(raw: bytes) -> dict[str, Any] | None:
    """One answer line read back, or None when the line is not one."""
    try:
        row = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(row, dict) or any(name not in row for name in LINE_FIELDS):
        return None
    if isinstance(row["n"], bool) or not isinstance(row["n"], int) or row["n"] < 0:
        return None
    return row


def answer_into(path: Path, engine, queries: Sequence[Query], k: int, filters: MetadataFilter | None = None,
                group: bool = True, skip: set[int] | frozenset[int] = frozenset(),
                channel: str | None = None) -> Iterator[int]:
    """Answer the queries not in ``skip``, in order, appending each answer to ``path`` as one line; yields each
    query's number once its line is written (and flushed), for a progress count."""
    todo = [n for n in range(len(queries)) if n not in skip]
    if not todo:
        return
    answers = engine.search_each([queries[n] for n in todo], k=k, filters=filters, group=group, channel=channel)
    with output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            synced = time.monotonic()
            try:
                for n, response in zip(todo, answers, strict=True):
                    fh.write(json_text({"n": n, **response.to_dict()}, indent=None) + "\n")
                    fh.flush()
                    if time.monotonic() - synced > SYNC_EVERY:
                        os.fsync(fh.fileno())
                        synced = time.monotonic()
                    yield n
            finally:
                fh.flush()
                os.fsync(fh.fileno())
