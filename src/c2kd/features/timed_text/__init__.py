"""Timed text of videos (subtitle files beside them, subtitle streams inside them, speech recognised in them)."""
