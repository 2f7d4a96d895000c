"""A transform pipeline's draw as grid_sample's 2 x 3 matrices, to check it against affine_grid."""

import numpy as np
import torch


def affine_grid_theta(pipe, n, hw, generator=None):
    """Per element: an affine_grid matrix (2 x 3, float32, align_corners=False); the output size."""
    total, out = pipe.matrices(n, hw, generator)
    # centred pixels -> grid_sample's normalised coordinates (align_corners=False)
    to_norm = np.diag([2.0 / hw[1], 2.0 / hw[0], 1.0])
    from_norm = np.diag([out[1] / 2.0, out[0] / 2.0, 1.0])
    theta = (to_norm @ total @ from_norm)[:, :2, :]
    return torch.from_numpy(theta.astype(np.float32)), out
