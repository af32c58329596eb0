"""The stages of one video's job: plain functions with typed inputs and outputs, which every
engine (:mod:`pipelines.engines`) composes the same way (:func:`pipelines.job.process_video`).

1. :mod:`~pipelines.stages.probe` — the file → :class:`pose.video.VideoInfo`;
2. :mod:`~pipelines.stages.pose` — frames → 44-joint :class:`pose.skeleton_file.Skeleton`
   (decoding, estimation, subject, gap filling and smoothing in :mod:`pose`), cached as
   ``KEY.skeleton.h5``; :class:`~pipelines.stages.pose.PoseOptions`;
3. :mod:`~pipelines.stages.windowing` — the track → windows; :class:`~pipelines.stages.windowing.WindowOptions`;
4. :mod:`~pipelines.stages.classify` — usable windows → :class:`~pipelines.stages.classify.WindowScores`
   through a :class:`~pipelines.stages.classify.Classifier`;
5. :mod:`~pipelines.stages.labelling` (with :mod:`~pipelines.stages.motion_energy`) — the
   scored track → :class:`~pipelines.stages.labelling.LabelResult` (top-k, segments, heat);
   :mod:`~pipelines.stages.model` runs 3–5 with the job's options and failures;
6. :mod:`~pipelines.stages.document` — everything → the labels document;
7. :mod:`~pipelines.stages.write` — each output file, the labels JSON last.

A stage raises :class:`~pipelines.stages.errors.StageError` for anything wrong with its
video; :mod:`~pipelines.stages.progress` is how a stage reports progress.
"""
