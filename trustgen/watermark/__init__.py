"""Keyed watermarks for samples, and detection as a hypothesis test (see docs/watermark.md)."""
