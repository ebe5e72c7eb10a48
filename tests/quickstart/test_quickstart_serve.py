"""`c2kd quickstart --serve` ends in a page: the test items indexed with its C2KD student, served, the URL said;
and its log stays short (issue 36)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.slow
def test_a_small_quickstart_ends_in_a_served_page_with_a_short_log(multi30k_root, muse, tmp_path):
    out = tmp_path / "qs"
    log_path = tmp_path / "log"
    command = [sys.executable, "-c", "from c2kd.cli import main; main()", "quickstart", "--out", str(out),
               "--data", str(multi30k_root), "--max-train", "64", "--max-val", "16", "--max-test", "16",
               "--epochs", "1", "--batch-size", "16", "--teachers", "off-the-shelf", "--threads", "1",
               "--serve", "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        url = None
        while url is None:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "no URL after 600 s:\n" + log_path.read_text()
            found = re.search(r"open (http://127\.0\.0\.1:\d+/)", log_path.read_text())
            url = found.group(1) if found else None
            time.sleep(0.5)
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and "c2kd video search" in page.text
        answer = httpx.get(url + "api/search", params={"q": "ein Hund rennt über eine Wiese", "k": 3}, timeout=60)
        assert answer.status_code == 200 and len(answer.json()["results"]) == 3
        health = httpx.get(url + "api/health", timeout=30).json()
        assert health["videos"] == 16 and health["frames"] == "text"  # the test items, sentences as frames
        assert health["model"].startswith("c2kd-")  # the run's name, not "best"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    log = log_path.read_text()
    assert "to do" not in log, log  # no "0/N ... to do" lines
    assert "Traceback" not in log
