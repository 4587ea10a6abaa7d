"""Train the bundled demonstration model: synthetic clips in, ONNX + manifest + metrics out.

    PYTHONPATH=services/classifier/src python services/classifier/training/train.py \\
        --out services/classifier/models/rodent-behaviour

Runs on CPU in minutes and is reproducible from --seed. Needs the training dependencies
(requirements.txt beside this file), which the service image never installs.
"""

from __future__ import annotations

import os
import sys

# Sleep rather than spin while waiting for the other OpenMP thread: on a shared 2-core machine a
# spinning thread whose partner has been descheduled slows training five- to tenfold. It must be
# set before torch loads its OpenMP runtime, hence before trainer is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from trainer import main

if __name__ == "__main__":
    sys.exit(main())
