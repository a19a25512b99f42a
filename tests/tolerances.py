"""Tolerances keyed by dtype: float64 tight, float32 loose."""

import numpy as np
import torch

#: Absolute tolerances for round trips and exact identities.
TOL = {torch.float64: 1e-9, torch.float32: 2e-4, np.float64: 1e-9, np.float32: 2e-4}
