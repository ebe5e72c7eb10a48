"""c2kd: multilingual text-video retrieval with Cross-Lingual Cross-Modal Knowledge Distillation.

Data flows through the package in this order::

    data/ (captions + frame-feature store)  ->  encoders/ (text tower, video tower)  ->  similarity.py
        ->  losses/ (NCE, C2KD, ablations)  <-  distill/ (frozen teachers, cached scores)
        ->  train/ (stages, trainer)  ->  evaluation/ (R@K per language)

with search (index/, search/, serve/) reading trained models back, and commands/ (the ``c2kd`` command)
above everything.
"""

__version__ = "0.1.0"
