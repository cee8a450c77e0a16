"""Tests of export.saved_model: signatures, metadata, reload, serving pre/post-processing."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import saved_model as sm
from export._testing import spread_fastdepth
from export.litert_runner import SavedModelRunner
from tfdepth.data import augment
from tfdepth.errors import DataError, InvalidInputError
from tests._images import uniform_images

INPUT_SIZE = (64, 64)
DEPTH_RANGE = [0.5, 80.0]
# The SavedModel runs the same float32 kernels as the eager Keras model, but as a graph in which
# grappler / oneDNN may fuse ops differently: agreement to a few float32 ulps of ~10 m values.
GRAPH_VS_EAGER_RTOL = 1e-6


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  model = spread_fastdepth(INPUT_SIZE)
  path = str(tmp_path_factory.mktemp("sm") / "model")
  meta = sm.export_saved_model(model, path, {"experiment": "unit_test", "depth_range":
                                             DEPTH_RANGE, "notes": "kept"})
  return model, path, meta, sm.load_saved_model(path)


def _images(n, seed=0):
  return uniform_images(n, INPUT_SIZE + (3,), seed)


def test_reload_gives_keras_outputs(exported):
  model, _, _, loaded = exported
  x = _images(3)
  expected = np.clip(model(x)["depth"].numpy(), *DEPTH_RANGE)
  assert expected.min() > DEPTH_RANGE[0]  # the clamp is inactive: raw model outputs compared
  out = loaded.native(x)
  np.testing.assert_allclose(out["depth"].numpy(), expected, rtol=GRAPH_VS_EAGER_RTOL)
  np.testing.assert_allclose(out["disparity"].numpy(), 1.0 / expected, rtol=GRAPH_VS_EAGER_RTOL)


def test_metadata_stored_twice(exported):
  _, path, meta, loaded = exported
  assert meta["input_size"] == list(INPUT_SIZE)
  assert meta["depth_range"] == DEPTH_RANGE
  assert meta["experiment"] == "unit_test" and meta["notes"] == "kept"
  assert meta["normalization"] == "rgb_float32_0_1"
  import tfdepth  # pylint: disable=g-import-not-at-top
  assert meta["tfdepth_version"] == tfdepth.__version__
  assert loaded.metadata == meta
  assert sm.read_metadata(path) == meta
  with open(os.path.join(path, "assets.extra", "tfdepth_metadata.json")) as f:
    assert json.load(f) == meta
  assert set(loaded.module.signatures) == {"serving_default", "native", "metadata"}


def test_serving_at_model_size_equals_native(exported):
  _, _, _, loaded = exported
  # uint8 values c map to exactly c / 255 in float32 on both paths, and a resize to the same
  # size is the identity (half-pixel bilinear at scale 1 samples pixel centres).
  u8 = np.random.default_rng(1).integers(0, 256, size=(2,) + INPUT_SIZE + (3,), dtype=np.uint8)
  served = loaded.serve(u8)
  native = loaded.native(u8.astype(np.float32) / 255.0)
  np.testing.assert_allclose(served["depth"].numpy(), native["depth"].numpy(),
                             rtol=GRAPH_VS_EAGER_RTOL)


@pytest.mark.parametrize("in_hw", [(48, 80), (130, 31), (1, 1)])
def test_serving_any_size_constant_colour(exported, in_hw):
  _, _, _, loaded = exported
  colour = np.array([200, 30, 90], np.uint8)
  u8 = np.broadcast_to(colour, (2,) + in_hw + (3,)).copy()
  served = loaded.serve(u8)
  depth, disp = served["depth"].numpy(), served["disparity"].numpy()
  assert depth.shape == (2,) + in_hw + (1,) and disp.shape == depth.shape
  # A constant image resizes to the same constant image, so the model sees exactly the native
  # input; the output is the native disparity resized bilinearly, then inverted.
  const = np.broadcast_to(colour.astype(np.float32) / 255.0, (2,) + INPUT_SIZE + (3,))
  native_disp = loaded.native(np.ascontiguousarray(const))["disparity"].numpy()
  expected_disp = tf.image.resize(native_disp, in_hw, method="bilinear").numpy()
  np.testing.assert_allclose(disp, expected_disp, rtol=GRAPH_VS_EAGER_RTOL)
  np.testing.assert_allclose(depth, 1.0 / expected_disp, rtol=GRAPH_VS_EAGER_RTOL)


def test_serving_preprocesses_as_the_input_pipeline(exported):
  # A larger, non-square noise image: the serving signature must feed the network what the
  # evaluation / training pipeline (`tfdepth.data.augment.resize`) feeds it.
  _, _, _, loaded = exported
  in_hw = (150, 110)
  u8 = np.random.default_rng(3).integers(0, 256, size=(1,) + in_hw + (3,), dtype=np.uint8)
  image = u8[0].astype(np.float32) / 255.0
  element = augment.resize({"image": image, "depth": np.ones(in_hw + (1,), np.float32),
                            "intrinsics": np.eye(3, dtype=np.float32)}, *INPUT_SIZE)
  native_disp = loaded.native(element["image"][np.newaxis])["disparity"].numpy()
  expected_disp = tf.image.resize(native_disp, in_hw, method="bilinear").numpy()
  served = loaded.serve(u8)["disparity"].numpy()
  np.testing.assert_allclose(served, expected_disp, rtol=GRAPH_VS_EAGER_RTOL)
  # The check has teeth: without antialiasing (the serving resize before) the network input of
  # this noise image differs, and so does its depth.
  plain = tf.image.resize(image[np.newaxis], INPUT_SIZE, method="bilinear").numpy()
  plain_disp = tf.image.resize(loaded.native(plain)["disparity"].numpy(), in_hw,
                               method="bilinear").numpy()
  assert np.max(np.abs(plain_disp / expected_disp - 1.0)) > 100 * GRAPH_VS_EAGER_RTOL


def test_serve_refuses_non_uint8_images(exported):
  _, _, _, loaded = exported
  with pytest.raises(InvalidInputError, match="uint8 RGB images.*received dtype float32"):
    loaded.serve(np.full((1, 8, 8, 3), 0.5, np.float32))   # would have been cast to black
  with pytest.raises(InvalidInputError, match="uint8 RGB images.*received dtype uint16"):
    loaded.serve(np.full((1, 8, 8, 3), 300, np.uint16))    # would have wrapped to 44
  with pytest.raises(InvalidInputError, match="received dtype None"):
    loaded.serve([[[[1, 2, 3]]]])
  with pytest.raises(InvalidInputError, match=r"\(B, H, W, 3\), received shape \(8, 8, 3\)"):
    loaded.serve(np.zeros((8, 8, 3), np.uint8))


def test_serving_clamps_to_depth_range(tmp_path):
  # A model whose depth is 0 everywhere: the serving signature must clamp to min depth instead
  # of returning infinite disparity.
  inp = keras.Input((32, 32, 3))
  zero = keras.layers.Lambda(lambda x: 0.0 * x[..., :1])(inp)
  model = keras.Model(inp, {"depth": zero})
  sm.export_saved_model(model, str(tmp_path / "m"), {"experiment": "zero"})
  out = sm.load_saved_model(str(tmp_path / "m")).serve(np.zeros((1, 40, 24, 3), np.uint8))
  # depth = 1 / (1 / 0.1): exact up to the float32 rounding of two reciprocals (rtol 1e-6).
  np.testing.assert_allclose(out["depth"].numpy(), 0.1, rtol=1e-6)  # DEFAULT_MIN_DEPTH
  np.testing.assert_allclose(out["disparity"].numpy(), 10.0, rtol=1e-6)


def test_bad_inputs(exported, tmp_path):
  model, path, _, _ = exported
  with pytest.raises(InvalidInputError, match="experiment"):
    sm.export_saved_model(model, str(tmp_path / "a"), {})
  with pytest.raises(InvalidInputError, match=r"depth_range.*\[5, 1\]"):
    sm.export_saved_model(model, str(tmp_path / "b"), {"experiment": "e", "depth_range": [5, 1]})
  with pytest.raises(InvalidInputError, match=r"\[32, 32\].*\[64, 64\]"):
    sm.export_saved_model(model, str(tmp_path / "c"), {"experiment": "e",
                                                       "input_size": [32, 32]})
  with pytest.raises(InvalidInputError, match="already contains"):
    sm.export_saved_model(model, path, {"experiment": "e"})
  with pytest.raises(InvalidInputError, match="must be a dict"):
    sm.export_saved_model(model, str(tmp_path / "d"), "experiment=e")
  inp = keras.Input((32, 32, 3))
  plain = keras.Model(inp, keras.layers.Conv2D(1, 1)(inp))
  with pytest.raises(InvalidInputError, match="dict with key 'depth'"):
    sm.export_saved_model(plain, str(tmp_path / "e"), {"experiment": "e"})
  inp = keras.Input((None, None, 3))
  dyn = keras.Model(inp, {"depth": keras.layers.Conv2D(1, 1)(inp)})
  with pytest.raises(InvalidInputError, match="static H and W"):
    sm.export_saved_model(dyn, str(tmp_path / "f"), {"experiment": "e"})
  with pytest.raises(DataError, match="no SavedModel"):
    sm.load_saved_model(str(tmp_path))


def test_saved_model_runner(exported):
  model, path, _, loaded = exported
  runner = SavedModelRunner(path)
  assert runner.input_size == INPUT_SIZE
  x = _images(2, 5)
  np.testing.assert_allclose(runner.predict(x), model(x)["depth"].numpy(),
                             rtol=GRAPH_VS_EAGER_RTOL)
  # Another size: disparity resized back, as the serving signature does with uint8 input.
  x_odd = x[:, :40, :50]
  u8 = sm.as_uint8(x_odd)
  # Same resize ops, eager (runner) vs in the graph (signature), and a chain of two float32
  # reciprocals: agreement to rtol 1e-5.
  np.testing.assert_allclose(runner.predict(u8.astype(np.float32) / 255.0),
                             loaded.serve(u8)["depth"].numpy(), rtol=1e-5)
  stats = runner.latency(3)
  assert stats["num_runs"] == 3 and stats["median_ms"] > 0
  # The thread pools of this process are already running: a thread count cannot be applied.
  with pytest.raises(InvalidInputError, match="fresh process"):
    SavedModelRunner(path, num_threads=7)


def test_report_times_saved_model_in_subprocess(exported):
  _, path, _, _ = exported
  from export import report as report_lib  # pylint: disable=g-import-not-at-top
  # TF thread pools are fixed per process: SavedModel latency is measured in a fresh one.
  stats = report_lib.measure_latency(path, "saved_model", num_runs=2, threads=(1,))
  assert list(stats) == ["1"] and stats["1"]["num_runs"] == 2 and stats["1"]["median_ms"] > 0
  size = report_lib.artefact_size(path)
  assert size > 4 * exported[0].count_params() * 0.9  # the float32 variables are in there
