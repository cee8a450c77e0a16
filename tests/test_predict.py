"""Tests of `tfdepth-predict` (trainers/predict.py) with a tiny FastDepth saved as .keras."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from PIL import Image

from tfdepth import io as io_lib
from tfdepth.errors import DataError
from tfdepth.geometry import pointcloud
from trainers import predict

MODEL_HW = (64, 64)  # FastDepth needs multiples of 32
MODEL_MAX_DEPTH = 10.0  # metres; sigmoid head, so every prediction is in (0, 10)
EXIF_ORIENTATION_TAG = 0x0112
EXIF_ROTATE_90_CW = 6


@pytest.fixture(scope="module")
def keras_model_and_path(tmp_path_factory):
  from tfdepth.models import build_fastdepth  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = build_fastdepth(input_shape=MODEL_HW + (3,), width_multiplier=0.25,
                          depth_activation="sigmoid", max_depth=MODEL_MAX_DEPTH)
  path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
  model.save(path)
  return model, path


@pytest.fixture(scope="module")
def keras_model(keras_model_and_path):
  return keras_model_and_path[1]


@pytest.fixture(scope="module")
def predictor(keras_model):
  return predict.load_predictor(model=keras_model)


def _images(folder):
  """Writes the awkward inputs; returns {name: displayed (H, W)}."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (37, 50), dtype=np.uint8), mode="L").save(
      os.path.join(folder, "gray.png"))
  Image.fromarray(rng.integers(0, 255, (70, 45, 4), dtype=np.uint8), mode="RGBA").save(
      os.path.join(folder, "rgba.png"))
  rot = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
  exif = rot.getexif()
  exif[EXIF_ORIENTATION_TAG] = EXIF_ROTATE_90_CW
  rot.save(os.path.join(folder, "rotated.jpg"), exif=exif.tobytes())
  Image.fromarray(rng.integers(0, 255, (33, 71, 3), dtype=np.uint8)).save(
      os.path.join(folder, "odd.bmp"))
  return {"gray": (37, 50), "rgba": (70, 45), "rotated": (40, 30), "odd": (33, 71)}


def test_outputs_have_input_size(tmp_path, predictor):
  sizes = _images(tmp_path / "in")
  out = tmp_path / "out"
  summary = predict.predict([str(tmp_path / "in")], str(out), predictor,
                            predict.PredictOptions(batch_size=3, panel=True, save_ply=True,
                                                   progress=False))
  assert summary["num_errors"] == 0 and summary["num_ok"] == 4
  assert summary["model"]["input_size"] == list(MODEL_HW)
  assert summary["model"]["depth_type"] == "metric"
  assert summary["model"]["depth_type_source"] == "assumed"
  for record in summary["frames"]:
    h, w = sizes[record["name"]]
    assert record["size"] == [h, w]
    depth = np.load(record["outputs"]["depth_npy"])
    assert depth.shape == (h, w) and depth.dtype == np.float32
    # Sigmoid head: (0, 10) m at model size; bilinear disparity resizing stays inside the range.
    assert 0.0 < depth.min() and depth.max() < MODEL_MAX_DEPTH
    with Image.open(record["outputs"]["depth_color"]) as im:
      assert im.size == (w, h) and im.mode == "RGB"
    with Image.open(record["outputs"]["panel"]) as im:
      assert im.size == (2 * w, h)
    mm = io_lib.read_depth_png(record["outputs"]["depth_mm_png"])
    assert np.max(np.abs(mm - depth)) <= 0.5e-3 + 1e-6  # mm rounding (+ float32 of depth)
    points, colors = pointcloud.read_ply(record["outputs"]["ply"])
    assert points.shape == (h * w, 3) and colors.shape == (h * w, 3)
    assert record["intrinsics"]["source"] == predict.INTRINSICS_HFOV
  written = json.loads((out / predict.PREDICTIONS_JSON).read_text())
  assert written["num_ok"] == 4


def test_keras_predictor_matches_model_at_model_size(predictor, keras_model_and_path):
  # The predictor (reloaded from .keras with safe_mode=True) equals the in-memory model.
  model = keras_model_and_path[0]
  x = np.random.default_rng(3).uniform(size=(2,) + MODEL_HW + (3,)).astype(np.float32)
  expected = model(x, training=False)["depth"].numpy()
  got = predictor.predict_fn(x)
  assert got.shape == (2,) + MODEL_HW + (1,)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)  # same weights; graph vs eager
  # Resizing back as disparity: a constant-depth map stays exactly constant at any size.
  const = predict.resize_depth_back(np.full((4, 4, 1), 2.5, np.float32), (7, 9))
  np.testing.assert_allclose(const, np.full((7, 9), 2.5), rtol=1e-6)  # 1/(1/2.5) in float32


def test_point_cloud_back_projection_hand_computed(tmp_path):
  # K with fx = 2, fy = 4, cx = 1, cy = 0.5 (pixels); a 2 x 3 depth map.
  k, info = predict.resolve_intrinsics(2, 3, fx=2.0, fy=4.0, cx=1.0, cy=0.5)
  assert info["source"] == predict.INTRINSICS_FLAGS
  depth = np.array([[2.0, 4.0, 6.0], [1.0, 0.0, 8.0]], np.float32)
  image = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
  points, colors = pointcloud.depth_to_point_cloud(depth[..., None], k, image=image)
  # x = z (u - cx) / fx, y = z (v - cy) / fy, row-major order, the depth-0 pixel dropped:
  # (u, v, z) = (0,0,2): (-1, -0.25, 2); (1,0,4): (0, -0.5, 4); (2,0,6): (3, -0.75, 6);
  # (0,1,1): (-0.5, 0.125, 1); (2,1,8): (4, 1, 8).
  expected = [[-1.0, -0.25, 2.0], [0.0, -0.5, 4.0], [3.0, -0.75, 6.0], [-0.5, 0.125, 1.0],
              [4.0, 1.0, 8.0]]
  np.testing.assert_allclose(points, expected, rtol=0, atol=1e-6)  # float32 arithmetic
  np.testing.assert_array_equal(colors, image.reshape(6, 3)[[0, 1, 2, 3, 5]])
  # Defaults: fy = fx, principal point at the pixel-centre image centre ((W-1)/2, (H-1)/2).
  k2, _ = predict.resolve_intrinsics(5, 8, fx=10.0)
  np.testing.assert_array_equal(k2, [[10, 0, 3.5], [0, 10, 2], [0, 0, 1]])
  # HFOV guess: 90° -> fx = (W / 2) / tan(45°) = W / 2.
  k3, info3 = predict.resolve_intrinsics(4, 6, hfov_deg=90.0)
  assert k3[0, 0] == pytest.approx(3.0, rel=1e-6) and info3["hfov_deg"] == 90.0
  # A calibration file wins over the HFOV guess.
  (tmp_path / "k.txt").write_text("5 0 2\n0 6 1\n0 0 1\n")
  k4, info4 = predict.resolve_intrinsics(3, 4, calibration=str(tmp_path / "k.txt"))
  np.testing.assert_array_equal(k4, [[5, 0, 2], [0, 6, 1], [0, 0, 1]])
  assert info4["source"] == predict.INTRINSICS_CALIBRATION


def test_ply_from_predict_matches_depth_and_flags_k(tmp_path, predictor):
  Image.fromarray(np.full((6, 8, 3), 120, np.uint8)).save(tmp_path / "flat.png")
  summary = predict.predict([str(tmp_path / "flat.png")], str(tmp_path / "o"), predictor,
                            predict.PredictOptions(save_ply=True, fx=7.0, fy=9.0, cx=3.0,
                                                   cy=2.0, progress=False))
  rec = summary["frames"][0]
  depth = np.load(rec["outputs"]["depth_npy"])
  points, _ = pointcloud.read_ply(rec["outputs"]["ply"])
  v, u = np.mgrid[0:6, 0:8]
  expected = np.stack([depth * (u - 3.0) / 7.0, depth * (v - 2.0) / 9.0, depth], -1)
  np.testing.assert_allclose(points, expected.reshape(-1, 3), rtol=1e-6, atol=1e-6)  # float32
  assert rec["intrinsics"]["K"] == [[7.0, 0.0, 3.0], [0.0, 9.0, 2.0], [0.0, 0.0, 1.0]]


def test_bad_file_in_folder_is_an_error_entry(tmp_path, predictor):
  _images(tmp_path / "in")
  (tmp_path / "in" / "corrupt.png").write_bytes(b"\x89PNG broken")
  (tmp_path / "in" / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
  (tmp_path / "in" / "notes.txt").write_text("ignored: not an image extension")
  os.makedirs(tmp_path / "empty")
  summary = predict.predict([str(tmp_path / "in"), str(tmp_path / "empty"),
                             str(tmp_path / "missing.jpg")], str(tmp_path / "out"), predictor,
                            predict.PredictOptions(batch_size=2, progress=False))
  by_name = {r["name"]: r for r in summary["frames"]}
  assert summary["num_ok"] == 4 and summary["num_errors"] == 4
  assert sorted(by_name) == ["clip", "corrupt", "empty", "gray", "missing", "odd", "rgba",
                             "rotated"]
  assert by_name["corrupt"]["status"] == "error" and "corrupt.png" in by_name["corrupt"]["error"]
  assert "clip.mp4" in by_name["clip"]["error"] and "supported" in by_name["clip"]["error"]
  assert "no image or video file" in by_name["empty"]["error"]
  assert "does not exist" in by_name["missing"]["error"]
  for name in ("gray", "odd", "rgba", "rotated"):
    assert by_name[name]["status"] == "ok"
    assert os.path.isfile(by_name[name]["outputs"]["depth_npy"])


# mpeg4 at high quality on flat frames: decoded values within a few grey levels of the source
# (YUV 4:2:0 round trip + DCT quantisation); 40-level steps between frames stay separable.
VIDEO_LEVEL_TOLERANCE = 6


def _write_video(path, levels, size=(36, 50), codec="mpeg4"):
  """A real video file (FFmpeg via PyAV): one flat grey frame per entry of `levels`."""
  import av  # pylint: disable=g-import-not-at-top
  with av.open(str(path), "w") as container:
    stream = container.add_stream(codec, rate=10)
    stream.height, stream.width = size
    stream.pix_fmt = "yuv420p"
    stream.options = {"qscale": "1"}
    for level in levels:
      frame = av.VideoFrame.from_ndarray(np.full(size + (3,), level, np.uint8), format="rgb24")
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def test_video_file_is_decoded_frame_by_frame(tmp_path, predictor):
  levels = [40, 80, 120, 160, 200]
  _write_video(tmp_path / "clip.mp4", levels)
  decoded = list(predict._video_frames(str(tmp_path / "clip.mp4"), stride=1, max_frames=None))
  assert [i for i, _ in decoded] == list(range(len(levels)))
  for (_, rgb), level in zip(decoded, levels):
    assert rgb.shape == (36, 50, 3) and rgb.dtype == np.uint8
    assert abs(float(rgb.mean()) - level) < VIDEO_LEVEL_TOLERANCE
  # stride and max_frames select frames 0, 2 (then stop).
  assert [i for i, _ in predict._video_frames(str(tmp_path / "clip.mp4"), 2, 2)] == [0, 2]
  summary = predict.predict([str(tmp_path / "clip.mp4")], str(tmp_path / "o"), predictor,
                            predict.PredictOptions(progress=False, frame_stride=2))
  assert [r["name"] for r in summary["frames"]] == ["clip_000000", "clip_000002", "clip_000004"]
  assert all(r["status"] == "ok" and r["size"] == [36, 50] for r in summary["frames"])
  assert np.load(summary["frames"][1]["outputs"]["depth_npy"]).shape == (36, 50)


def test_video_without_a_decodable_video_stream_is_an_error_entry(tmp_path, predictor):
  import av  # pylint: disable=g-import-not-at-top
  # A Matroska file holding only an audio stream (no picture to predict on).
  with av.open(str(tmp_path / "audio.mkv"), "w") as container:
    stream = container.add_stream("pcm_s16le", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                       layout="mono")
    frame.sample_rate = 8000
    for packet in stream.encode(frame):
      container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  _write_video(tmp_path / "good.mp4", [100])
  summary = predict.predict([str(tmp_path / "audio.mkv"), str(tmp_path / "good.mp4")],
                            str(tmp_path / "o"), predictor,
                            predict.PredictOptions(progress=False))
  by_name = {r["name"]: r for r in summary["frames"]}
  assert by_name["audio"]["status"] == "error"
  assert "audio.mkv" in by_name["audio"]["error"]
  assert "no video stream" in by_name["audio"]["error"]
  assert by_name["good_000000"]["status"] == "ok"   # the other input was still processed
  with pytest.raises(DataError, match=r"audio\.mkv.*no video stream"):
    list(predict._video_frames(str(tmp_path / "audio.mkv"), 1, None))


def test_animated_gif_is_a_frame_sequence(tmp_path, predictor):
  frames = [Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)) for i in range(3)]
  frames[0].save(tmp_path / "seq.gif", save_all=True, append_images=frames[1:])
  summary = predict.predict([str(tmp_path / "seq.gif")], str(tmp_path / "o"), predictor,
                            predict.PredictOptions(progress=False, frame_stride=2))
  assert [r["name"] for r in summary["frames"]] == ["seq_000000", "seq_000002"]
  assert all(r["size"] == [20, 30] for r in summary["frames"])


def test_known_depth_median_alignment(tmp_path, predictor):
  Image.fromarray(np.random.default_rng(1).integers(0, 255, (16, 24, 3), np.uint8)).save(
      tmp_path / "a.png")
  opts = predict.PredictOptions(alignment="median", known_depths=((5, 7, 42.0),),
                                progress=False)
  rec = predict.predict([str(tmp_path / "a.png")], str(tmp_path / "o"), predictor,
                        opts)["frames"][0]
  depth = np.load(rec["outputs"]["depth_npy"])
  # One reference point: ratio = 42 / pred(5, 7), so the aligned depth there is 42 m
  # (float32 product: rel 1e-6).
  assert depth[7, 5] == pytest.approx(42.0, rel=1e-6)
  assert rec["alignment"]["applied"] and rec["alignment"]["num_points"] == 1
  assert rec["depth_type"] == "metric"
  # Without a reference the frame is still written, unaligned, and says so.
  rec2 = predict.predict([str(tmp_path / "a.png")], str(tmp_path / "o2"), predictor,
                         predict.PredictOptions(alignment="scale_shift",
                                                progress=False))["frames"][0]
  assert rec2["status"] == "ok" and rec2["alignment"]["applied"] is False


def test_sparse_depth_folder_scale_shift(tmp_path, predictor):
  Image.fromarray(np.random.default_rng(4).integers(0, 255, (16, 24, 3), np.uint8)).save(
      tmp_path / "b.png")
  raw = predict.predict([str(tmp_path / "b.png")], str(tmp_path / "raw"), predictor,
                        predict.PredictOptions(progress=False))["frames"][0]
  pred = np.load(raw["outputs"]["depth_npy"]).astype(np.float64)
  # A metric reference related to the prediction by disparity scale 3 and shift 0.02 1/m, known
  # on every 4th pixel, stored in a folder as <input name>.npy.
  ref = np.zeros_like(pred)
  ref[::4, ::4] = 1.0 / (3.0 / pred[::4, ::4] + 0.02)
  os.makedirs(tmp_path / "sparse")
  np.save(tmp_path / "sparse" / "b.npy", ref.astype(np.float32))
  rec = predict.predict([str(tmp_path / "b.png")], str(tmp_path / "al"), predictor,
                        predict.PredictOptions(alignment="scale_shift",
                                               sparse_depth=str(tmp_path / "sparse"),
                                               progress=False))["frames"][0]
  assert rec["alignment_reference"].endswith("b.npy")
  # float32 storage of pred and ref (rel 6e-8 each) bounds the fit error well below 1e-4.
  assert rec["alignment"]["scale"] == pytest.approx(3.0, rel=1e-4)
  assert rec["alignment"]["shift"] == pytest.approx(0.02, rel=1e-3)
  aligned = np.load(rec["outputs"]["depth_npy"])
  np.testing.assert_allclose(aligned, 1.0 / (3.0 / pred + 0.02), rtol=1e-4)


def test_load_predictor_errors(tmp_path):
  with pytest.raises(DataError, match="nope.keras"):
    predict.load_predictor(model=str(tmp_path / "nope.keras"))
  (tmp_path / "m.onnx").write_bytes(b"x")
  with pytest.raises(DataError, match="m.onnx"):
    predict.load_predictor(model=str(tmp_path / "m.onnx"))


def _run_main(argv):
  predict._define_flags()  # pylint: disable=protected-access
  fl = flags.FLAGS
  try:
    fl(["tfdepth-predict"] + argv)
    return predict.main(["tfdepth-predict"])
  finally:
    fl.unparse_flags()


def test_cli_exit_codes(tmp_path, keras_model, capsys):
  _images(tmp_path / "in")
  (tmp_path / "in" / "corrupt.jpg").write_bytes(b"garbage")
  out = tmp_path / "out"
  rc = _run_main([f"--input={tmp_path / 'in'}", f"--model={keras_model}", f"--output_dir={out}",
                  "--noprogress", "--nosave_npy"])
  assert rc == 1  # one bad file -> non-zero, the others written
  summary = json.loads((out / predict.PREDICTIONS_JSON).read_text())
  assert summary["num_ok"] == 4 and summary["num_errors"] == 1
  assert "depth_npy" not in summary["frames"][-1]["outputs"]
  assert "corrupt.jpg" in capsys.readouterr().err
  rc = _run_main([f"--input={tmp_path / 'in' / 'gray.png'}", f"--model={tmp_path / 'x.keras'}",
                  f"--output_dir={out}"])
  assert rc == 2
  assert "x.keras" in capsys.readouterr().err


def test_help_lists_flags():
  # --help must not need TensorFlow to start (fast) and must document every flag.
  result = subprocess.run([sys.executable, "-m", "trainers.predict", "--helpshort"],
                          capture_output=True, text=True, timeout=120, check=False,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  for flag in ("--input", "--model", "--model_dir", "--checkpoint", "--alignment",
               "--known_depth", "--sparse_depth", "--calibration", "--hfov_deg", "--save_ply",
               "--panel", "--batch_size", "--depth_type"):
    assert flag in result.stdout, flag


def test_tflite_source_matches_keras(tmp_path, keras_model_and_path, predictor):
  # (The SavedModel source goes through the same `_run_native` runner interface; its export takes
  # ~30 s on 2 cores, so it is checked by export's own tests, not here.)
  from export import tflite as tflite_lib  # pylint: disable=g-import-not-at-top
  tflite_path = tmp_path / "m.tflite"
  tflite_path.write_bytes(tflite_lib.convert_to_tflite(keras_model_and_path[0], "tflite_fp32"))
  Image.fromarray(np.random.default_rng(2).integers(0, 255, (30, 41, 3), np.uint8)).save(
      tmp_path / "a.png")
  ref = predict.predict([str(tmp_path / "a.png")], str(tmp_path / "k"), predictor,
                        predict.PredictOptions(progress=False))["frames"][0]
  p = predict.load_predictor(model=str(tflite_path))
  assert p.source == "tflite" and p.input_size == MODEL_HW and p.depth_type_source == "assumed"
  rec = predict.predict([str(tmp_path / "a.png")], str(tmp_path / "t"), p,
                        predict.PredictOptions(progress=False))["frames"][0]
  # Same float32 network through another runtime: kernels differ in summation order only.
  np.testing.assert_allclose(np.load(rec["outputs"]["depth_npy"]),
                             np.load(ref["outputs"]["depth_npy"]), rtol=1e-4)


def _training_run(tmp_path, name, overrides, build):
  """A model_dir as tfdepth-train leaves it (resolved config + last checkpoint), untrained."""
  from trainers import common, experiments  # pylint: disable=g-import-not-at-top
  config = experiments.apply_overrides(experiments.get_experiment(name), overrides)
  model = build(config)
  model_dir = str(tmp_path / name)
  os.makedirs(os.path.join(model_dir, common.CHECKPOINT_DIR))
  experiments.save_resolved_config(config, model_dir)
  model.save_weights(os.path.join(model_dir, common.CHECKPOINT_DIR, common.LAST_CHECKPOINT))
  return model, model_dir


def test_checkpoint_of_a_dynamic_run_loads_as_relative_depth(tmp_path):
  from trainers import dynamic  # pylint: disable=g-import-not-at-top
  model, model_dir = _training_run(
      tmp_path, "dynamic_synthetic_street", ["data.height=64", "data.width=64"],
      lambda c: dynamic.build_dynamic_trainer(c, with_metrics=False))
  p = predict.load_predictor(model_dir=model_dir)
  assert (p.depth_type, p.depth_type_source, p.input_size) == ("relative", "experiment", (64, 64))
  x = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)
  # The loaded weights are the run's: the same depth as the trainer that saved them.
  np.testing.assert_allclose(p.predict_fn(x), model(x, training=False)["depth"].numpy(),
                             rtol=1e-5, atol=1e-6)


def test_checkpoint_of_a_stereo_run_is_metric_after_the_stereo_scale_factor(tmp_path):
  from trainers import self_supervised as ss  # pylint: disable=g-import-not-at-top
  model, model_dir = _training_run(
      tmp_path, "monodepth2_synthetic_street_stereo", ["data.height=64", "data.width=64"],
      lambda c: ss.build_self_supervised_trainer(c, 1, with_metrics=False))
  p = predict.load_predictor(model_dir=model_dir)
  assert (p.depth_type, p.depth_type_source) == ("metric", "experiment")
  assert p.describe()["depth_scale_factor"] == ss.STEREO_SCALE_FACTOR == 5.4
  x = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)
  # Depth in units of the 0.1 training baseline x 5.4 = metres (KITTI baseline 0.54 m).
  np.testing.assert_allclose(p.predict_fn(x), 5.4 * model(x, training=False)["depth"].numpy(),
                             rtol=1e-5)
