"""core: the facts and primitives that ``pose``, ``mmn`` and ``pipelines`` share.

It imports none of them (nor torch, OpenCV or MediaPipe), so each can build on it alone:

- :mod:`core.layouts`: skeleton layouts as data (:data:`~core.layouts.MA52_44` …);
- :mod:`core.taxonomy`: action taxonomies (:data:`~core.taxonomy.MA52`, user class lists);
- :mod:`core.atomic`: the one atomic writer every output goes through;
- :mod:`core.hashing`: file sha256 (video fingerprints, checkpoints);
- :mod:`core.safe_pickle`: data pickles read through an exact allow-list, never code.
"""
