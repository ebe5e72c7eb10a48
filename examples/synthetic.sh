#!/usr/bin/env bash
# Synthetic walk-through: data, two teachers, zero-shot / translate-train / C2KD students, evaluation.
# Runs on a CPU in a few minutes. Usage: bash examples/synthetic.sh [workdir]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-synthetic-work}
mkdir -p "$work" && cd "$work"
c2kd data synthetic --out data/synthetic --missing-test 6
c2kd model random-text --corpus data/synthetic --out models/student-text --seed 0
c2kd model random-text --corpus data/synthetic --out models/teacher-a-text --seed 1
c2kd model random-text --corpus data/synthetic --out models/teacher-b-text --seed 2 --architecture xlm-roberta
for run in teacher-a teacher-b zero-shot translate-train c2kd; do
  /usr/bin/time -f "$run: %e s, peak %M KB" c2kd train --config "$repo/configs/synthetic/$run.yaml"
done
for run in zero-shot translate-train c2kd; do
  c2kd evaluate --checkpoint runs/synthetic/$run --data data/synthetic --split test --json results/$run.json
done
