"""Drawing: the per-video pictures and the annotated clip."""
