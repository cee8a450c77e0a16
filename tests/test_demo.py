"""End-to-end test of the demo (tiny sizes) and of its median baseline."""

import json
import os

import numpy as np
from PIL import Image

from trainers import common
from trainers import demo
from trainers import experiments

TINY = dict(height=32, width=64, num_train=8, num_validation=2, num_test=3, epochs=1,
            batch_size=4, width_multiplier=0.25)


def test_per_pixel_median_uses_valid_pixels_only():
  depths = np.zeros((4, 2, 2, 1), np.float32)
  depths[:, 0, 0, 0] = [1.0, 2.0, 10.0, 0.0]   # invalid 0 ignored: median of 1, 2, 10 = 2
  depths[:, 0, 1, 0] = [4.0, 6.0, 0.0, 0.0]    # median of 4, 6 = 5
  depths[:, 1, 0, 0] = [3.0, 3.0, 3.0, 3.0]
  # pixel (1, 1) is never valid: falls back to the median of all 9 valid values
  # (1, 2, 10, 4, 6, 3, 3, 3, 3) = 3.
  median = demo.per_pixel_median_depth(depths)
  np.testing.assert_array_equal(median[..., 0], [[2.0, 5.0], [3.0, 3.0]])


def test_demo_config_applies_the_flags():
  cfg = demo.demo_config(**TINY)
  assert (cfg.data.height, cfg.data.width) == (32, 64)
  assert cfg.data.builder_kwargs["num_train"] == 8 and cfg.train.epochs == 1
  assert cfg.model.kwargs["width_multiplier"] == 0.25
  name = common.synthetic_world_config(cfg.data.tfds_name, cfg.data.builder_kwargs).name
  assert name == "street_height32_num_test3_num_train8_num_validation2_width64"


def test_tiny_demo_end_to_end(tmp_path):
  out = str(tmp_path / "demo")
  result = demo.run_demo(out, config=demo.demo_config(**TINY), num_png=2, num_calibration=4,
                         verbose=0)
  with open(os.path.join(out, demo.METRICS_JSON)) as f:
    written = json.load(f)
  assert written["criterion"] == result["criterion"]
  rows = written["results"]
  assert set(rows) == {"median_baseline", "fastdepth_keras", "fastdepth_tflite_int8"}
  for row in rows.values():
    assert all(np.isfinite(row[k]) for k in ("abs_rel", "rmse", "delta1"))
    assert 0.0 <= row["delta1"] <= row["delta2"] <= row["delta3"] <= 1.0
  # The int8 model runs the same network: its output quantisation step is about
  # max_depth / 255 = 0.31 m against depths of several metres, so AbsRel agrees within 10 %.
  keras_abs_rel = rows["fastdepth_keras"]["abs_rel"]
  assert abs(rows["fastdepth_tflite_int8"]["abs_rel"] - keras_abs_rel) <= 0.1 * keras_abs_rel
  # Files: PNGs (image + GT + Keras + TFLite rows), SavedModel, TFLite, checkpoints, config.
  for i in range(2):
    png = np.asarray(Image.open(os.path.join(out, f"depth_{i:03d}.png")))
    assert png.shape == (4 * 32, 64, 3) and png.dtype == np.uint8
  assert os.path.exists(os.path.join(out, "saved_model", "saved_model.pb"))
  assert os.path.getsize(os.path.join(out, "fastdepth_tflite_int8.tflite")) > 1000
  assert os.path.exists(os.path.join(out, "model", common.CHECKPOINT_DIR,
                                     common.LAST_CHECKPOINT))
  assert experiments.load_resolved_config(os.path.join(out, "model")).data.height == 32
  assert os.path.isdir(os.path.join(out, "tfds", "synthetic_world"))   # documented default
  with open(os.path.join(out, demo.METRICS_MD)) as f:
    assert "| median_baseline |" in f.read()


def test_demo_refuses_to_replace_outputs_it_did_not_write(tmp_path):
  import pytest  # pylint: disable=g-import-not-at-top
  from tfdepth.errors import ConfigError  # pylint: disable=g-import-not-at-top
  out = str(tmp_path / "mine")
  user_model = os.path.join(out, "saved_model")
  os.makedirs(os.path.join(user_model, "variables"))
  with open(os.path.join(user_model, "saved_model.pb"), "wb") as f:
    f.write(b"a user's model")
  with pytest.raises(ConfigError) as err:
    demo.run_demo(out, config=demo.demo_config(**TINY), verbose=0)
  assert repr(out) in str(err.value) and "['saved_model']" in str(err.value)
  assert "--overwrite" in str(err.value)
  with open(os.path.join(user_model, "saved_model.pb"), "rb") as f:
    assert f.read() == b"a user's model"             # untouched
  assert not os.path.exists(os.path.join(out, demo.DEMO_MARKER))
  # --overwrite takes the folder over (marks it); a folder the demo marked is its own.
  assert demo.check_output_dir(out, overwrite=True)
  assert os.path.exists(os.path.join(out, demo.DEMO_MARKER))
  assert demo.check_output_dir(out)
  assert demo.check_output_dir(str(tmp_path / "new"))   # new folders are fine
