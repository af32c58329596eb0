"""``python -m mmn.test``: the evaluation CLI (:mod:`mmn.training.test`; needs the ``[train]`` extra)."""
import sys

from mmn.training.test import main

if __name__ == "__main__":
    sys.exit(main())
