"""pipelines: video → skeleton → MMN windows → labels, heatmaps and annotated clips."""
