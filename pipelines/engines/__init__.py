"""Engines: what runs the stages over many videos (local, Ray)."""
