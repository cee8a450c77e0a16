"""Small, deterministic FastDepth and Monodepth2 models for export tests and benchmarks.

A freshly initialised FastDepth with a ReLU head outputs ~0 m everywhere (depth clamped away,
quantisation ranges degenerate). `spread_fastdepth` rescales only the 1x1 head so that on
uniform-noise images the depth has mean ``HEAD_BIAS_M`` and standard deviation ``HEAD_STD_M``:
a realistic, spatially varying depth map for comparing export formats.
"""

import numpy as np

# Target depth statistics of the test model (metres): a street-scene-like 5 +- 1 m.
HEAD_BIAS_M = 5.0
HEAD_STD_M = 1.0
# Images used to measure the head's output spread.
_NUM_PROBE_IMAGES = 4


def spread_fastdepth(input_size=(64, 64), width_multiplier=0.25, seed=0, **kwargs):
  """FastDepth (tfdepth.models.build_fastdepth) whose head gives depth ~ 5 +- 1 m.

  Args:
    input_size: (H, W), multiples of 32.
    width_multiplier: FastDepth alpha (0.25 keeps tests fast).
    seed: numpy seed of the head weights and probe images.
    **kwargs: other `build_fastdepth` arguments.
  Returns:
    Keras 3 model float32 (B, H, W, 3) in [0, 1] -> {"depth": (B, H, W, 1) metres}.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from tfdepth.models import build_fastdepth  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)  # deterministic encoder / decoder initialisation
  model = build_fastdepth(tuple(input_size) + (3,), width_multiplier=width_multiplier, **kwargs)
  rng = np.random.default_rng(seed)
  head = model.get_layer(f"{model.name}_head_conv")
  kernel, bias = head.get_weights()
  kernel = rng.normal(0.0, 1.0, kernel.shape).astype(np.float32)
  head.set_weights([kernel, np.zeros_like(bias)])
  probe = rng.uniform(size=(_NUM_PROBE_IMAGES,) + tuple(input_size) + (3,)).astype(np.float32)
  # With zero bias the ReLU cuts half of the head's output; measure the pre-activation spread
  # through a bias large enough that nothing is cut.
  head.set_weights([kernel, np.full_like(bias, 1e3)])
  out = model(probe)["depth"].numpy()
  scale = HEAD_STD_M / float(np.std(out))
  mean = (float(np.mean(out)) - 1e3) * scale
  head.set_weights([kernel * scale, np.full_like(bias, HEAD_BIAS_M - mean)])
  return model


def monodepth2_depth_model(input_size=(192, 640), num_layers=18, seed=0, layers=None):
  """Monodepth2-R``num_layers`` export model (`build_monodepth2_depth_model`, min 0.1 m, max
  100 m) from a seeded random initialisation: the Monodepth2 model of the export tests and
  benchmarks, and its QAT builder (``"export._testing:monodepth2_depth_model"``; with
  ``layers=tf_keras.layers`` it builds the tf_keras twin).

  Args:
    input_size: (H, W), multiples of 32, >= 64 (paper: 192x640).
    num_layers: ResNet depth (18 = Monodepth2-R18).
    seed: Keras seed of the random initialisation (Keras 3 model only; the twin's weights are
      copied, not drawn).
    layers: ``None`` (Keras 3) or ``tf_keras.layers`` (the tf_keras twin).
  Returns:
    Model float32 (B, H, W, 3) in [0, 1] -> {"depth": (B, H, W, 1) metres in [0.1, 100]}.
  """
  from tfdepth.models import _common  # pylint: disable=g-import-not-at-top
  from tfdepth.models.monodepth2 import build_monodepth2_depth_model  # pylint: disable=g-import-not-at-top
  _, _, model_cls = _common.model_api(layers)
  if model_cls.__module__.split(".")[0] == "keras":
    import keras  # pylint: disable=g-import-not-at-top
    keras.utils.set_random_seed(seed)
  return build_monodepth2_depth_model(tuple(input_size) + (3,), num_layers, layers=layers)


# Spread of the test Monodepth2's disparity head: the pre-sigmoid logits get mean
# logit(sigmoid_disp(HEAD_BIAS_M)) and this standard deviation, so depth is ~5 m with most pixels
# in 3-8 m and tails to ~1-25 m on noise images (a randomly initialised net outputs sigmoid ~0.5,
# a near-constant 0.2 m).
MONODEPTH2_HEAD_LOGIT_STD = 0.5
MONODEPTH2_HEAD = "monodepth2_depth_decoder_dispconv0_conv"


def spread_monodepth2(input_size=(64, 64), num_layers=18, seed=0):
  """`monodepth2_depth_model` whose disparity head gives a varied depth around ``HEAD_BIAS_M``.

  Only the 3x3 head conv of ``disp_0`` is rescaled (as `spread_fastdepth` does for FastDepth's
  head), so the model still comes from `monodepth2_depth_model` (same weight list, same QAT
  builder).

  Returns:
    Keras 3 model float32 (B, H, W, 3) in [0, 1] -> {"depth": (B, H, W, 1) metres}.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from tfdepth.geometry.intrinsics import depth_to_disp  # pylint: disable=g-import-not-at-top
  model = monodepth2_depth_model(input_size, num_layers, seed)
  head = model.get_layer(MONODEPTH2_HEAD)
  logits = keras.Model(model.input, head.output)
  rng = np.random.default_rng(seed)
  kernel, bias = head.get_weights()
  kernel = rng.normal(0.0, 1.0, kernel.shape).astype(np.float32)
  head.set_weights([kernel, np.zeros_like(bias)])
  probe = rng.uniform(size=(_NUM_PROBE_IMAGES,) + tuple(input_size) + (3,)).astype(np.float32)
  out = np.asarray(logits(probe))
  scale = MONODEPTH2_HEAD_LOGIT_STD / float(np.std(out))
  s = float(np.asarray(depth_to_disp(np.float32(HEAD_BIAS_M))))
  target = np.log(s / (1.0 - s))
  head.set_weights([kernel * scale, np.full_like(bias, target - float(np.mean(out)) * scale)])
  return model
