"""VLFeat's numerics, shared by the HOG and DSIFT modules: constants and exact arithmetic.

Float32 arithmetic follows VLFeat's where it decides something discrete (bin
choices and ties) or is ill-conditioned (acos near 1): projections are
computed in the same order, and sqrt and acos are evaluated in double and
rounded, because PyTorch's vectorised float32 sqrt is off by one ulp on about
a fifth of inputs. What is not reproduced: summation order (VLFeat
accumulates pixels one by one, and normalises HOG blocks in double), and the
rounding of VLFeat's running-sum implementation of the flat-window filter.
Measured worst relative L2 errors on the sample photographs (64-130 px, all
options tried): about 1e-7 for hog and hogb (float32 rounding), about 2e-6
for dsift fast (the running sums; 1e-7 with the Gaussian window). See
tests/test_handcrafted.py.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# ImageNet's mean colour in 0-255 units: removed by preprocessing (HOG and SIFT only see
# differences)
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma
HOG_EPSILON = 1e-4  # UoCTTI block-norm regulariser (VLFeat)
CLAMP = 0.2
FLOAT_EPSILON = float(np.finfo(np.float32).eps)  # VL_EPSILON_F


def exact(fn, x):
    """fn evaluated in double precision and rounded back: correctly rounded float32 results, as C's
    sqrtf and acosf (PyTorch's vectorised float32 sqrt is off by one ulp on about a fifth of inputs,
    enough to move HOG's bin scores across VLFeat's ties and thresholds)."""
    return fn(x.double()).to(x.dtype) if x.dtype == torch.float32 else fn(x)


def safe_sqrt(x):
    """Correctly rounded sqrt with a zero (not NaN) derivative where x == 0: flat image regions have
    zero gradients.
    """
    positive = x > 0
    return torch.where(
        positive,
        exact(torch.sqrt, torch.where(positive, x, torch.ones_like(x))),
        torch.zeros_like(x),
    )


def like(buffer, x):
    """``buffer`` on the device and in the dtype of ``x``."""
    return buffer.to(device=x.device, dtype=x.dtype)


def depthwise(x, weight, **kwargs):
    """The same 2-D filter applied to every channel of x (a depthwise convolution)."""
    c = x.shape[1]
    return F.conv2d(
        x.contiguous(memory_format=torch.channels_last),
        like(weight, x).expand(c, -1, -1, -1).contiguous(),
        groups=c,
        **kwargs,
    )
