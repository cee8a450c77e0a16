"""tfdepth: monocular depth estimation in Keras 3 / TensorFlow.

Subpackages:
  geometry  camera model, poses, sampling and view synthesis (conventions documented there)
  losses    supervised and self-supervised depth losses (pure functions + Keras wrappers)
  metrics   KITTI / NYU evaluation metrics and protocols
  layers    custom Keras layers
  models    encoders and depth networks (functional builders)
  data      tf.data pipelines: decoding, joint augmentation, batching
"""

__version__ = "0.1.0"
