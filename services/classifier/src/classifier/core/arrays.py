"""The array types the layers share: float32 tensors, as the model takes and gives them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
