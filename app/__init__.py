"""Gradio web app: upload an interview video, see its micro-action timeline, heatmaps and
annotated clip (``python -m app``; see :mod:`app.__main__`)."""
