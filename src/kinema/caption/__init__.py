"""Structured captions: the schema and the captioning backends."""
