"""File formats the job writes and reads: labels document, events, ELAN, spans, run tables."""
