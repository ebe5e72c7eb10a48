"""Video ingestion: video files -> per-second frame features (decode, encoders, extract, CLI)."""
