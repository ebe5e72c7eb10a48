"""``python -m c2kd ...``: the ``c2kd`` command (also under ``torchrun -m c2kd``)."""

from c2kd.cli import main

main()
