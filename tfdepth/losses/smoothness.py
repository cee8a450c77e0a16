"""Edge-aware disparity smoothness of Monodepth2 (Godard et al. 2019, Eq. 3; `layers.get_smooth_loss`)."""

import tensorflow as tf

from tfdepth.losses import _common

# Monodepth2 `trainer.compute_losses`: norm_disp = disp / (mean_disp + 1e-7).
MEAN_NORMALISATION_EPS = 1e-7


def edge_aware_smoothness(disp, image, normalize=True):
  """Edge-aware smoothness mean|∂x d*|·exp(−mean_c|∂x I|) + mean|∂y d*|·exp(−mean_c|∂y I|), per image.

  d* = disp / (mean(disp) + 1e-7) with the mean per image (Monodepth2's mean-normalisation, Wang et
  al. 2018), forward differences (d[u] − d[u+1]); each of the two means is over its own tensor,
  (H, W − 1) for ∂x and (H − 1, W) for ∂y, as in Monodepth2. Monodepth2 weights the result by
  1e-3 / 2^s at scale s; that weight is the trainer's job.

  Args:
    disp: (B, H, W, 1) float disparity (any positive unit; Monodepth2 uses its sigmoid output) at the
      resolution of `image`, H, W >= 2.
    image: (B, H, W, C) float image in [0, 1] at the same resolution.
    normalize: divide disp by its per-image mean first (Monodepth2: True).
  Returns:
    (B,) float32 loss.
  Raises:
    InvalidInputError: wrong ranks or mismatched (H, W).
  """
  disp = _common.to_float(disp, "disp")
  image = _common.to_float(image, "image")
  _common.check_rank(disp, 4, "disp", channels=1)
  _common.check_rank(image, 4, "image")
  _common.check_same_hw(disp, image, "disp", "image")
  if normalize:
    mean_disp = tf.reduce_mean(disp, axis=[1, 2, 3], keepdims=True)
    disp = disp / (mean_disp + MEAN_NORMALISATION_EPS)
  grad_disp_x = tf.abs(disp[:, :, :-1, :] - disp[:, :, 1:, :])
  grad_disp_y = tf.abs(disp[:, :-1, :, :] - disp[:, 1:, :, :])
  grad_img_x = tf.reduce_mean(tf.abs(image[:, :, :-1, :] - image[:, :, 1:, :]), -1, keepdims=True)
  grad_img_y = tf.reduce_mean(tf.abs(image[:, :-1, :, :] - image[:, 1:, :, :]), -1, keepdims=True)
  return (_common.image_mean(grad_disp_x * tf.exp(-grad_img_x))
          + _common.image_mean(grad_disp_y * tf.exp(-grad_img_y)))
