"""Bad-input suite: every public entry rejects wrong input with a typed error naming the value.

One table (`CASES`), one parametrised test: each case builds its bad input (shape, dtype,
NaN/inf/negative depth, empty tensors, truncated / corrupt PNG and JPEG files, `.bin` scans whose
size is not a multiple of 16 bytes, calibration files with missing keys, image sizes not divisible
by 32, intrinsics with zero focal length, unsafe archives, bad CLI flags) and names the exact error
type and a regular expression that the message must contain: the received value (or the file),
so a user can see what was wrong. `len(CASES)` is quoted in docs/RELIABILITY.md.

Also: `.keras` files of the model zoo load with `safe_mode=True`; a `.keras` file carrying a
Python lambda is refused under `safe_mode=True`; no module uses pickle.
"""

import io
import os
import re
import tarfile
import zipfile

from absl import app
from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from export import _common as export_common
from export import cli as export_cli
from export import report as export_report
from export import saved_model as export_saved_model
from tfdepth import errors
from tfdepth import geometry
from tfdepth import io as tfdepth_io
from tfdepth import losses
from tfdepth import metrics
from tfdepth import models
from tfdepth.data import adapters
from tfdepth.data import pipeline
from tfdepth.metrics import functional
from tfds_builders.common import archives
from tfds_builders.common import errors as builder_errors
from tfds_builders.common import images
from tfds_builders.common import kitti_calib
from tfds_builders.common import lidar
from trainers import common
from trainers import experiments
from trainers import predict
from trainers import supervised
from trainers import train as train_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_PACKAGES = ("tfdepth", "trainers", "export", "tfds_builders", "benchmarks")
Corrupt = builder_errors.CorruptFileError
BuilderInvalid = builder_errors.InvalidInputError
Invalid = errors.InvalidInputError

# A 3x3 K with fx = 0 (pixels): every consumer must refuse it.
ZERO_FOCAL_K = [[0.0, 0.0, 31.5], [0.0, 50.0, 15.5], [0.0, 0.0, 1.0]]
VELODYNE_RECORD_BYTES = 16  # float32 x, y, z, reflectance (KITTI devkit)


# ------------------------------------------------------------------------------ file fixtures
def _png8():
  return tf.io.encode_png(np.full((4, 5, 3), 7, np.uint8)).numpy()


def _png16(value=5000):
  return tf.io.encode_png(np.full((4, 5, 1), value, np.uint16)).numpy()


def _jpeg():
  rng = np.random.default_rng(0)
  return tf.io.encode_jpeg(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).numpy()


def _write(tmp, name, data):
  path = os.path.join(tmp, name)
  with open(path, "wb" if isinstance(data, bytes) else "w") as f:
    f.write(data)
  return path


CAM_TO_CAM_WITHOUT_P2 = (
    "calib_time: 09-Jan-2012 13:57:47\n"
    "R_rect_00: 1 0 0 0 1 0 0 0 1\n"
    "P_rect_00: 721.5 0 609.5 0 0 721.5 172.8 0 0 0 1 0\n"
    "S_rect_02: 1242 375\n")
VELO_TO_CAM = "R: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n"


def _calibration(tmp, cam_to_cam=CAM_TO_CAM_WITHOUT_P2, velo_to_cam=VELO_TO_CAM):
  _write(tmp, kitti_calib.CAM_TO_CAM_FILENAME, cam_to_cam)
  _write(tmp, kitti_calib.VELO_TO_CAM_FILENAME, velo_to_cam)
  return kitti_calib.KittiCalibration.from_dir(tmp)


def _zip(tmp, member):
  path = os.path.join(tmp, "evil.zip")
  with zipfile.ZipFile(path, "w") as z:
    z.writestr(member, "pwned")
  return path


def _tar(tmp, member, symlink_to=None):
  path = os.path.join(tmp, "evil.tar")
  with tarfile.open(path, "w") as t:
    info = tarfile.TarInfo(member)
    if symlink_to:
      info.type, info.linkname = tarfile.SYMTYPE, symlink_to
      t.addfile(info)
    else:
      data = b"pwned"
      info.size = len(data)
      t.addfile(info, io.BytesIO(data))
  return path


def _element(**overrides):
  element = {"image": tf.zeros([4, 6, 3]), "depth": tf.ones([4, 6, 1]),
             "intrinsics": tf.eye(3)}
  element.update(overrides)
  return element


def _nan_depth():
  return tf.constant(np.array([np.nan, 1.0, -2.0, np.inf] * 6, np.float32).reshape(4, 6, 1))


def _run_cli(module, argv):
  """Runs an absl entry point's `main` with `argv` flags; restores the flag values after."""
  module._define_flags()  # pylint: disable=protected-access
  flags.FLAGS(argv)
  try:
    return module.main([argv[0]])
  finally:
    flags.FLAGS.unparse_flags()


def _tiny_config(*extra):
  return experiments.apply_overrides(experiments.get_experiment("fastdepth_synthetic_street"),
                                     list(extra))


def _export_without_experiment(tmp):
  model = models.build_fastdepth(input_shape=(32, 32, 3), width_multiplier=0.25)
  return export_saved_model.export_saved_model(model, os.path.join(tmp, "sm"), {"note": "x"})


# ------------------------------------------------------------------------------ the case table
# (id, fn(tmp) raising, expected error type, regex the message must contain)
CASES = [
    # --- tfds_builders.common.images: truncated / corrupt PNG and JPEG files
    ("png16_not_png", lambda t: images.decode_png16(b"GIF89a" + b"\0" * 40, "d.png"),
     Corrupt, r"d\.png is not a PNG file \(first bytes b'GIF89a"),
    ("png16_truncated_header", lambda t: images.decode_png16(_png16()[:20], "d.png"),
     Corrupt, r"d\.png is not a PNG"),
    ("png16_truncated_body", lambda t: images.read_png16(_write(t, "d.png", _png16()[:40])),
     Corrupt, r"d\.png could not be decoded as a 16-bit PNG.*truncated or corrupt"),
    ("png16_corrupt_body", lambda t: images.decode_png16(
        _png16()[:33] + b"\0" * 30, "d.png"), Corrupt, r"d\.png could not be decoded"),
    ("png16_is_8bit", lambda t: images.decode_png16(_png8(), "d.png"),
     Corrupt, r"d\.png is a 8-bit PNG; a 16-bit PNG was expected"),
    ("png16_low_range", lambda t: images.decode_png16(_png16(200), "d.png"),
     Corrupt, r"maximum value is 200 <= 255"),
    ("png16_missing", lambda t: images.read_png16(os.path.join(t, "nope.png")),
     builder_errors.MissingFileError, r"nope\.png"),
    ("rgb_empty_file", lambda t: images.read_rgb(_write(t, "e.png", b"")),
     Corrupt, r"e\.png is not a PNG file \(first bytes b''"),
    ("rgb_truncated_png", lambda t: images.read_rgb(_write(t, "i.png", _png8()[:45])),
     Corrupt, r"i\.png could not be decoded as an 8-bit PNG.*size 45"),
    ("rgb_16bit_png", lambda t: images.decode_rgb(_png16(), "i.png"),
     Corrupt, r"i\.png is a 16-bit PNG; an 8-bit RGB image was expected"),
    ("rgb_truncated_jpeg", lambda t: images.read_rgb(
        _write(t, "i.jpg", _jpeg()[:len(_jpeg()) // 2])),
     Corrupt, r"i\.jpg could not be decoded as a JPEG"),
    ("rgb_corrupt_jpeg", lambda t: images.decode_rgb(b"\xff\xd8" + b"\0" * 50, "c.jpg"),
     Corrupt, r"c\.jpg could not be decoded as a JPEG"),
    ("encode_png_float", lambda t: images.encode_png(np.zeros((2, 2, 1), np.float32)),
     BuilderInvalid, r"dtype float32 shape \(2, 2, 1\)"),
    ("encode_png_rank2", lambda t: images.encode_png(np.zeros((2, 2), np.uint8)),
     BuilderInvalid, r"shape \(2, 2\)"),
    # --- tfds_builders.common.lidar: .bin sizes, shapes
    ("velodyne_17_bytes", lambda t: lidar.read_velodyne_bin(_write(t, "s.bin", b"\0" * 17)),
     Corrupt, r"s\.bin has 17 bytes, not a multiple of 16"),
    ("velodyne_one_short", lambda t: lidar.read_velodyne_bin(
        _write(t, "s.bin", b"\0" * (3 * VELODYNE_RECORD_BYTES - 1))), Corrupt, r"has 47 bytes"),
    ("velodyne_missing", lambda t: lidar.read_velodyne_bin(os.path.join(t, "none.bin")),
     builder_errors.MissingFileError, r"none\.bin"),
    ("project_points_2d", lambda t: lidar.project_to_depth(np.zeros((5, 2)), np.zeros((3, 4)),
                                                           (4, 4)),
     BuilderInvalid, r"got \(5, 2\)"),
    ("project_matrix_3x3", lambda t: lidar.project_to_depth(np.zeros((5, 4)), np.eye(3), (4, 4)),
     BuilderInvalid, r"velo_to_image must have shape \(3, 4\); got \(3, 3\)"),
    ("project_depth_mode", lambda t: lidar.project_to_depth(np.zeros((5, 4)), np.zeros((3, 4)),
                                                            (4, 4), depth_mode="range"),
     BuilderInvalid, r"got 'range'"),
    # --- tfds_builders.common.kitti_calib: missing keys, wrong sizes, bad lines
    ("calib_missing_P_rect_02", lambda t: _calibration(t).projection(2),
     Corrupt, r"key 'P_rect_02' is missing \(keys present: \['P_rect_00', 'R_rect_00', "
              r"'S_rect_02'\]\)"),
    ("calib_missing_T", lambda t: _calibration(t, velo_to_cam="R: 1 0 0 0 1 0 0 0 1\n")
     .velo_to_cam_matrix(), Corrupt, r"key 'T' is missing"),
    ("calib_wrong_size", lambda t: _calibration(t, cam_to_cam="R_rect_00: 1 0 0 0 1\n")
     .rect_matrix(), Corrupt, r"key 'R_rect_00' has 5 values, expected 9"),
    ("calib_no_colon", lambda t: kitti_calib.read_calib_file(_write(t, "c.txt", "P_rect_02 1 2\n")),
     Corrupt, r"line 1 'P_rect_02 1 2' has no 'key: values' colon"),
    ("calib_no_numbers", lambda t: kitti_calib.read_calib_file(_write(t, "c.txt", "a: x y\n")),
     Corrupt, r"c\.txt: no numeric calibration entry"),
    ("calib_missing_file", lambda t: kitti_calib.KittiCalibration.from_dir(t),
     builder_errors.MissingFileError, re.escape(kitti_calib.CAM_TO_CAM_FILENAME)),
    # --- tfds_builders.common.archives: path traversal, absolute paths, links, suffix
    ("zip_parent_traversal", lambda t: archives.safe_extract(_zip(t, "../evil.txt"),
                                                             os.path.join(t, "out")),
     builder_errors.UnsafeArchiveError, r"member '\.\./evil\.txt' would be written outside"),
    ("zip_absolute", lambda t: archives.safe_extract(_zip(t, "/tmp/evil.txt"),
                                                     os.path.join(t, "out")),
     builder_errors.UnsafeArchiveError, r"member '/tmp/evil\.txt'"),
    ("tar_nested_traversal", lambda t: archives.safe_extract(_tar(t, "a/../../evil.txt"),
                                                             os.path.join(t, "out")),
     builder_errors.UnsafeArchiveError, r"member 'a/\.\./\.\./evil\.txt' would be written outside"),
    ("tar_symlink", lambda t: archives.safe_extract(_tar(t, "link", symlink_to="/etc/passwd"),
                                                    os.path.join(t, "out")),
     builder_errors.UnsafeArchiveError, r"member 'link' is a link \(to '/etc/passwd'\)"),
    ("archive_suffix", lambda t: archives.safe_extract(_write(t, "a.rar", b"x"), t),
     BuilderInvalid, r"a\.rar' is not a supported archive"),
    ("archive_missing", lambda t: archives.safe_extract(os.path.join(t, "no.zip"), t),
     builder_errors.MissingFileError, r"no\.zip"),
    # --- tfdepth.io: user files (CLI inputs)
    ("io_truncated_png", lambda t: tfdepth_io.load_rgb(_write(t, "t.png", _png8()[:45])),
     errors.DataError, r"t\.png'.*truncated"),
    ("io_corrupt_jpeg", lambda t: tfdepth_io.load_rgb(_write(t, "c.jpg", b"\xff\xd8" + b"\0" * 9)),
     errors.DataError, r"cannot decode image '.*c\.jpg'"),
    ("io_truncated_jpeg", lambda t: tfdepth_io.load_rgb(
        _write(t, "h.jpg", _jpeg()[:len(_jpeg()) // 2])), errors.DataError, r"h\.jpg'"),
    ("io_truncated_depth_png", lambda t: tfdepth_io.read_depth_png(
        _write(t, "d.png", _png16()[:40])),
     errors.DataError, r"cannot decode depth PNG '.*d\.png'"),
    ("io_intrinsics_zero_focal", lambda t: tfdepth_io.read_intrinsics(
        _write(t, "k.txt", "0 0 31.5\n0 50 15.5\n0 0 1\n")),
     errors.DataError, r"invalid K \[\[0\.0, 0\.0, 31\.5\]"),
    ("io_calibration_missing_key", lambda t: tfdepth_io.read_intrinsics(
        _write(t, "c.txt", "P_rect_00: 1 0 0 0 0 1 0 0 0 0 1 0\n")),
     errors.DataError, r"has labelled lines \['P_rect_00'\] but no 'P_rect_02' line"),
    ("io_depth_empty", lambda t: tfdepth_io.write_depth_png(os.path.join(t, "o.png"),
                                                            np.zeros((0, 4), np.float32)),
     Invalid, r"received \(0, 4\)"),
    ("io_depth_scale_zero", lambda t: tfdepth_io.depth_to_uint16(np.ones((2, 2)), scale=0),
     Invalid, r"got 0"),
    # --- geometry: intrinsics with zero focal length / non-finite / wrong shape
    ("validate_k_zero_focal", lambda t: geometry.validate_intrinsics(tf.constant(ZERO_FOCAL_K)),
     Invalid, r"fx > 0 and fy > 0 \(pixels\), got fx=0\.0, fy=50\.0"),
    ("validate_k_nan", lambda t: geometry.validate_intrinsics(
        tf.constant([[np.nan, 0, 1], [0, 5, 1], [0, 0, 1]], tf.float32)),
     Invalid, r"finite, got \[\[nan"),
    ("validate_k_shape", lambda t: geometry.validate_intrinsics(tf.eye(4)), Invalid, r"\(4, 4\)"),
    ("predict_zero_fx", lambda t: predict.resolve_intrinsics(64, 64, fx=0.0),
     Invalid, r"fx=0\.0"),
    # --- tfdepth.data: elements and pipeline arguments
    ("element_missing_key", lambda t: adapters.validate_supervised_element(
        {"image": tf.zeros([4, 6, 3]), "depth": tf.ones([4, 6, 1])}),
     Invalid, r"received \['depth', 'image'\]"),
    ("element_image_int32", lambda t: adapters.validate_supervised_element(
        _element(image=tf.zeros([4, 6, 3], tf.int32))), Invalid, r"received int32"),
    ("element_image_4ch", lambda t: adapters.validate_supervised_element(
        _element(image=tf.zeros([4, 6, 4]))), Invalid, r"received \(4, 6, 4\)"),
    ("element_depth_uint16", lambda t: adapters.validate_supervised_element(
        _element(depth=tf.zeros([4, 6, 1], tf.uint16))), Invalid, r"received uint16"),
    ("element_depth_2ch", lambda t: adapters.validate_supervised_element(
        _element(depth=tf.zeros([4, 6, 2]))), Invalid, r"received \(4, 6, 2\)"),
    ("element_size_mismatch", lambda t: adapters.validate_supervised_element(
        _element(depth=tf.zeros([4, 5, 1]))), Invalid, r"image \(4, 6, 3\) and depth \(4, 5, 1\)"),
    ("element_intrinsics_3x4", lambda t: adapters.validate_supervised_element(
        _element(intrinsics=tf.zeros([3, 4]))), Invalid, r"received \(3, 4\)"),
    # In-graph check (tf.data): TensorFlow's InvalidArgumentError carries the offending values.
    ("element_nan_depth_raise", lambda t: adapters.validate_supervised_element(
        _element(depth=_nan_depth()), invalid_depth="raise"),
     tf.errors.InvalidArgumentError, r"NaN/inf/negative values, e\.g\.'\n24\n|received'\n18\n"),
    ("invalid_depth_mode", lambda t: adapters.sanitize_depth(tf.ones([2, 2, 1]), "drop"),
     Invalid, r"received 'drop'"),
    ("pipeline_batch_0", lambda t: pipeline.make_supervised_dataset(
        tf.data.Dataset.range(3), batch_size=0),
     Invalid, r"batch_size expected a positive int, received 0"),
    ("pipeline_batch_float", lambda t: pipeline.make_supervised_dataset(
        tf.data.Dataset.range(3), batch_size=2.5), Invalid, r"received 2\.5"),
    ("pipeline_height_only", lambda t: pipeline.make_supervised_dataset(
        tf.data.Dataset.range(3), height=32), Invalid, r"received 32, None"),
    ("pipeline_not_dicts", lambda t: pipeline.make_supervised_dataset(
        tf.data.Dataset.range(3)), Invalid, r"received TensorSpec\(shape=\(\), dtype=tf\.int64"),
    ("pipeline_bad_source", lambda t: pipeline.make_supervised_dataset(42),
     Invalid, r"received <class 'int'>"),
    # --- models: sizes not divisible by 32, channels, options, names
    ("fastdepth_60x90", lambda t: models.build_fastdepth(input_shape=(60, 90, 3)),
     Invalid, r"multiples of 32, got H=60, W=90"),
    ("fastdepth_4_channels", lambda t: models.build_fastdepth(input_shape=(64, 64, 4)),
     Invalid, r"got C=4 in \(64, 64, 4\)"),
    ("fastdepth_width_0", lambda t: models.build_fastdepth(input_shape=(64, 64, 3),
                                                           width_multiplier=0.0),
     Invalid, r"got 0\.0"),
    ("monodepth2_100x100", lambda t: models.get_model("monodepth2_depth",
                                                      input_shape=(100, 100, 3)),
     Invalid, r"got H=100, W=100"),
    ("fcrn_100x90", lambda t: models.get_model("fcrn", input_shape=(100, 90, 3)),
     Invalid, r"got H=100, W=90"),
    ("dpt_100x90", lambda t: models.get_model("dpt", input_shape=(100, 90, 3)),
     Invalid, r"got H=100, W=90"),
    ("unknown_model", lambda t: models.get_model("fastdepht"), errors.ConfigError, r"'fastdepht'"),
    # --- losses
    ("loss_rank3", lambda t: losses.l1_loss(tf.zeros([4, 4, 1]), tf.zeros([4, 4, 1])),
     Invalid, r"received shape \(4, 4, 1\)"),
    ("loss_shape_mismatch", lambda t: losses.berhu_loss(tf.ones([1, 4, 4, 1]),
                                                        tf.ones([1, 4, 5, 1])),
     Invalid, r"\(1, 4, 4, 1\) and target has shape \(1, 4, 5, 1\)"),
    ("loss_string_dtype", lambda t: losses.l1_loss(tf.constant([[[["a"]]]]),
                                                   tf.ones([1, 1, 1, 1])),
     Invalid, r"received dtype string"),
    ("silog_focus_2", lambda t: losses.scale_invariant_log_loss(
        tf.ones([1, 4, 4, 1]), tf.ones([1, 4, 4, 1]), variance_focus=2.0),
     Invalid, r"received 2\.0"),
    ("ordinal_edges_unsorted", lambda t: losses.ordinal_regression_loss(
        tf.zeros([1, 4, 4, 2]), tf.ones([1, 4, 4, 1]), [1.0, 3.0, 2.0]),
     Invalid, r"received \[1\.0, 3\.0, 2\.0\]"),
    ("keras_loss_config", lambda t: losses.SILogLoss(variance_focus=1.5), Invalid, r"1\.5"),
    ("trainer_unknown_term", lambda t: supervised.resolve_loss_function("sillog"),
     Invalid, r"'sillog'"),
    ("trainer_nan_weight", lambda t: supervised.SupervisedDepthModel(
        models.build_fastdepth(input_shape=(32, 32, 3), width_multiplier=0.25),
        [("l1", float("nan"))]), Invalid, r"received nan"),
    # --- metrics
    ("metrics_shape_mismatch", lambda t: functional.compute_depth_errors(
        tf.ones([1, 4, 4, 1]), tf.ones([1, 4, 5, 1])),
     Invalid, r"gt \(1, 4, 4, 1\) and pred \(1, 4, 5, 1\)"),
    ("metrics_rank2", lambda t: functional.compute_depth_errors(tf.ones([4, 4]), tf.ones([4, 4])),
     Invalid, r"got \(4, 4\)"),
    ("metrics_int_gt", lambda t: functional.compute_depth_errors(
        tf.ones([1, 4, 4, 1], tf.int32), tf.ones([1, 4, 4, 1])), Invalid, r"got dtype int32"),
    ("metrics_nan_pred", lambda t: functional.compute_depth_errors_numpy(
        np.ones((4, 4)), np.full((4, 4), np.nan)),
     Invalid, r"got np\.float64\(nan\) at flat index 0"),
    ("metrics_protocol", lambda t: metrics.standard_metrics("martian"),
     errors.ConfigError, r"'martian'"),
    # --- export
    ("export_images_empty", lambda t: export_common.check_images(np.zeros((0, 4, 4, 3),
                                                                          np.float32)),
     Invalid, r"got \(0, 4, 4, 3\)"),
    ("export_images_nan", lambda t: export_common.check_images(
        np.full((1, 4, 4, 3), np.nan, np.float32)), Invalid, r"range \[nan, nan\]"),
    ("export_images_uint8", lambda t: export_common.check_images(np.zeros((1, 4, 4, 3), np.uint8)),
     Invalid, r"got dtype uint8"),
    ("export_format", lambda t: export_report.check_format("onnx"), Invalid, r"'onnx'"),
    ("export_cli_format", lambda t: export_cli.export_experiment(
        "fastdepth_synthetic_street", "x.weights.h5", "tflite_int4", t),
     Invalid, r"'tflite_int4'"),
    ("export_metadata_no_experiment", lambda t: _export_without_experiment(t),
     Invalid, r"metadata\['experiment'\] must be a non-empty string, got None"),
    # --- trainers / CLIs (tfdepth-train flags and config overrides)
    ("cli_train_no_experiment", lambda t: _run_cli(train_lib, ["tfdepth-train",
                                                               f"--model_dir={t}"]),
     app.UsageError, r"--experiment and --model_dir are required"),
    ("cli_train_unknown_experiment", lambda t: _run_cli(
        train_lib, ["tfdepth-train", "--experiment=nope", f"--model_dir={t}"]),
     errors.ConfigError, r"unknown experiment 'nope'"),
    ("cli_train_bad_override_value", lambda t: _tiny_config("train.batch_size=abc"),
     errors.ConfigError, r"'abc'"),
    ("cli_train_unknown_override_key", lambda t: _tiny_config("train.bach_size=4"),
     errors.ConfigError, r"bach_size"),
    ("cli_train_zero_batch", lambda t: experiments.validate_config(_tiny_config(
        "train.batch_size=0")), errors.ConfigError, r"train\.batch_size .* received 0"),
    ("cli_train_unknown_strategy", lambda t: common.get_strategy("gpu"),
     errors.ConfigError, r"unknown strategy 'gpu'"),
    ("cli_predict_no_input", lambda t: predict.collect_inputs([]), Invalid, r"received \[\]"),
]
CASE_IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("case_id, fn, error, pattern", CASES, ids=CASE_IDS)
def test_bad_input_raises_a_typed_error_naming_the_value(case_id, fn, error, pattern, tmp_path):
  del case_id
  with pytest.raises(error) as info:
    fn(str(tmp_path))
  assert type(info.value) is error or isinstance(info.value, error)
  message = info.value.message if isinstance(info.value, tf.errors.OpError) else str(info.value)
  assert re.search(pattern, message, re.S), message


def test_case_table_is_unique_and_counted():
  assert len(set(CASE_IDS)) == len(CASE_IDS)
  with open(os.path.join(REPO_ROOT, "docs", "RELIABILITY.md")) as f:
    assert f"{len(CASES)} bad-input cases" in f.read()


def test_unsafe_archives_extract_nothing(tmp_path):
  out = tmp_path / "out"
  with pytest.raises(builder_errors.UnsafeArchiveError):
    archives.safe_extract(_zip(str(tmp_path), "../evil.txt"), str(out))
  assert not (tmp_path / "evil.txt").exists() and list(out.iterdir()) == []
  good = tmp_path / "good.zip"
  with zipfile.ZipFile(good, "w") as z:
    z.writestr("sub/ok.txt", "fine")
  archives.safe_extract(str(good), str(out))
  assert (out / "sub" / "ok.txt").read_text() == "fine"


def test_invalid_depth_values_are_masked_by_default():
  # NaN, inf and negative depths become 0 (= invalid, DESIGN.md); valid values pass unchanged.
  out = adapters.validate_supervised_element(_element(depth=_nan_depth()))["depth"].numpy()
  np.testing.assert_array_equal(out.ravel()[:4], [0.0, 1.0, 0.0, 0.0])
  assert np.all(np.isfinite(out))


# ------------------------------------------------------------------------------ safe loading
def test_zoo_model_keras_file_loads_with_safe_mode(tmp_path):
  model = models.get_model("fastdepth", input_shape=(32, 32, 3), width_multiplier=0.25)
  path = str(tmp_path / "fastdepth.keras")
  model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  x = np.random.default_rng(0).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  expected, got = model(x), loaded(x)
  expected = expected["depth"] if isinstance(expected, dict) else expected
  got = got["depth"] if isinstance(got, dict) else got
  np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))  # same graph, same weights


def test_keras_file_with_a_lambda_is_refused_in_safe_mode(tmp_path):
  x = keras.Input((4,))
  model = keras.Model(x, keras.layers.Lambda(lambda v: v * 2.0)(x))
  path = str(tmp_path / "lambda.keras")
  model.save(path)
  with pytest.raises(ValueError, match="safe_mode"):
    keras.saving.load_model(path, safe_mode=True)


PICKLE_PATTERN = re.compile(
    r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib|cloudpickle)\b|allow_pickle\s*=\s*True"
    r"|\.read_pickle\(|pickle\.loads?\(", re.M)


def test_no_pickle_anywhere():
  offenders = []
  for package in SOURCE_PACKAGES:
    for root, _, files in os.walk(os.path.join(REPO_ROOT, package)):
      for name in files:
        if name.endswith(".py"):
          path = os.path.join(root, name)
          with open(path, encoding="utf-8") as f:
            if PICKLE_PATTERN.search(f.read()):
              offenders.append(os.path.relpath(path, REPO_ROOT))
  assert offenders == []
  assert PICKLE_PATTERN.search("import pickle\n") and PICKLE_PATTERN.search(
      "np.load(p, allow_pickle=True)")  # the pattern itself works
