"""The C2KD authors' released models in c2kd: their student architecture, their checkpoint files read without
running pickled code, and their weights archive.

- :mod:`c2kd.authors.model`: ``AuthorsModel``, the authors' ``BaselineTokenFusionPerModModel*`` family (a
  fine-tuned text encoder, mean-pooled, LayerNorm + gated unit; CLIP frames through a gated unit, LayerNorm and a
  2-block fusion transformer with a CLS token), as far as it computes text and video embeddings.
- :mod:`c2kd.authors.importer`: their ``.pth`` checkpoint -> a c2kd checkpoint folder (the ``c2kd-authors``
  format), weights mapped by name, architecture read from the stored config with a restricted unpickler.
- :mod:`c2kd.authors.release`: their weights archive (the address in their README), fetched and imported.
"""
