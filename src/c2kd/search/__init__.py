"""Text-to-video search: query validation, the query engine, moment detection, index building, CLI."""
