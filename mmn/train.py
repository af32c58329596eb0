"""``python -m mmn.train``: the training CLI (:mod:`mmn.training.train`; needs the ``[train]`` extra)."""
import sys

from mmn.training.train import main

if __name__ == "__main__":
    sys.exit(main())
