"""Export one model to one format and report size, latency and accuracy next to the Keras model.

`export_and_report(model, metadata, fmt, output_dir, ...)` is the core of `tfdepth-export`
(`export.cli`), independent of the experiment registry: it writes the artefact and
``export_report_<fmt>.json`` / ``export_report_<fmt>.md`` with

* ``size_bytes``: the artefact's size on disk (a SavedModel directory: all its files);
* ``latency``: single-image latency at the model's size, median over ``num_runs`` runs (plus p10 /
  p90), for each thread count (1 and 2 by default). TFLite runs in this process (LiteRT's
  ``num_threads``); a SavedModel runs in a fresh subprocess per thread count, because TensorFlow
  fixes its thread pools when its runtime starts;
* ``ops`` (TFLite formats): `export.litert_runner.op_summary` (op types, ops left in float,
  QUANTIZE / DEQUANTIZE counts, XNNPACK partitions);
* ``metrics``: the standard metrics (`tfdepth.metrics.evaluate_predictions`, per image then the
  mean, under the given protocol) of the Keras model and of the exported model on the same
  images, side by side;
* ``parity``: how far the exported model's depths are from the Keras model's on the evaluated
  pixels (`parity_table`). Metrics against the ground truth can hide a broken export: on the
  export benchmark's Monodepth2-R18 the int8 depths are 0.81x the float model's (depth scale,
  `parity_table`), which happens to offset the float model's own error, so the int8 AbsRel moves
  by +1.9 % only while 46 % of the pixels are more than 1.25x away from the float model's depth
  (`export.bias_correction`).
"""

import json
import os
import subprocess
import sys

import numpy as np

from export import litert_runner
from export import tflite as tflite_lib
from export._common import ExportError, check_images
from export.saved_model import export_saved_model
from tfdepth.errors import InvalidInputError

FORMATS = ("saved_model",) + tflite_lib.TFLITE_FORMATS + ("tflite_qat",)
DEFAULT_THREADS = (1, 2)
# Timed runs per latency figure (after litert_runner.DEFAULT_WARMUP_RUNS warm-up runs).
DEFAULT_NUM_RUNS = 50
# Report files, one pair per format so that several formats can share an output directory.
REPORT_JSON = "export_report_{fmt}.json"
REPORT_MD = "export_report_{fmt}.md"
# Where the report's metrics are computed: at the test images' own size when they are not at the
# network's (each image resized to the network, the depth back to the image as disparity, as
# `tfdepth-eval` does; `tfdepth-export` passes the test split at its stored resolution), else at
# the network's input size.
GROUND_TRUTH_SIZE_NOTE = {
    "native": "ground truth at its own size, predictions resized to it as disparity "
              "(as tfdepth-eval)",
    "network": "ground truth at the network's input size"}
_LATENCY_TIMEOUT_S = 600
# `parity_table`: the fraction of pixels whose exported depth is within this factor of the Keras
# model's depth, the delta_1 threshold of Eigen et al. 2014 with the Keras depth in place of the
# ground truth.
PARITY_RATIO = 1.25
# The parity key of that fraction, named after the ratio ("within_1.25").
PARITY_WITHIN_KEY = f"within_{PARITY_RATIO}"
PARITY_KEYS = ("mean_log_ratio", "mean_abs_log_ratio", PARITY_WITHIN_KEY, "max_rel_diff")


def check_format(fmt):
  """Raises InvalidInputError listing the valid formats unless ``fmt`` is one of them."""
  if fmt not in FORMATS:
    raise InvalidInputError(f"unknown export format {fmt!r}; valid formats: {FORMATS}")
  return fmt


def artefact_size(path):
  """Bytes on disk of a file, or of all files under a directory."""
  if os.path.isdir(path):
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)
  return os.path.getsize(path)


def make_runner(path, fmt, num_threads=1):
  """A runner (`predict`, `latency`) for an artefact of format ``fmt``."""
  if fmt == "saved_model":
    return litert_runner.SavedModelRunner(path)
  return litert_runner.LiteRTRunner(path, num_threads=num_threads)


def _saved_model_latency(path, num_runs, num_threads):
  """Latency of a SavedModel measured in a fresh process with ``num_threads`` TF threads."""
  code = ("import json, sys; from export.litert_runner import SavedModelRunner; "
          "r = SavedModelRunner(sys.argv[1], num_threads=int(sys.argv[3])); "
          "print('LATENCY_JSON=' + json.dumps(r.latency(int(sys.argv[2]))))")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([repo] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                else []))
  proc = subprocess.run([sys.executable, "-c", code, path, str(num_runs), str(num_threads)],
                        capture_output=True, text=True, env=env, timeout=_LATENCY_TIMEOUT_S,
                        check=False)
  for line in proc.stdout.splitlines():
    if line.startswith("LATENCY_JSON="):
      return json.loads(line[len("LATENCY_JSON="):])
  raise ExportError(f"SavedModel latency subprocess failed (exit {proc.returncode}): "
                    f"{proc.stderr[-2000:]}")


def measure_latency(path, fmt, num_runs=DEFAULT_NUM_RUNS, threads=DEFAULT_THREADS):
  """``{str(num_threads): latency_stats}`` of an artefact for each thread count."""
  out = {}
  for n in threads:
    if fmt == "saved_model":
      out[str(n)] = _saved_model_latency(path, num_runs, n)
    else:
      out[str(n)] = make_runner(path, fmt, n).latency(num_runs)
  return out


def metric_table(gts, preds, protocol):
  """``{metric: mean over images}`` of depth predictions against gts (0 = invalid): arrays
  (N, H, W, 1) or lists of (H_i, W_i, 1), each prediction at its ground truth's size.

  Non-positive predictions (a ReLU head's 0) become `tfdepth.metrics.streaming.RESIZE_MIN_DEPTH`
  (the evaluator needs positive depths, which it resizes as disparity); the evaluator then scales
  (median / stereo protocols) and clamps to the protocol's [min, max] itself, in that order
  (Monodepth2 ``evaluate_depth.py``).
  """
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from tfdepth.metrics import streaming  # pylint: disable=g-import-not-at-top
  floor = np.float32(streaming.RESIZE_MIN_DEPTH)
  preds = [np.where(p > 0, p, floor)[..., 0] for p in (np.asarray(p, np.float32) for p in preds)]
  table, _ = metrics.evaluate_predictions([np.asarray(g, np.float32)[..., 0] for g in gts], preds,
                                          protocol)
  return {k: float(v) for k, v in table.items()}


def parity_table(gts, reference, preds, protocol):
  """How close depths ``preds`` are to ``reference`` (the Keras model's) where ``gts`` is evaluated.

  On each image's pixels of the protocol's evaluation mask (`tfdepth.metrics.evaluation_mask` of
  the ground truth: depth range and crop), with both depths clamped to the protocol's
  [min_depth, max_depth] as the evaluator clamps predictions (no median scaling: this is the
  artefact's raw output), r = ln(pred / reference). Per image, then the mean over the images
  that have evaluated pixels, as the metrics are reduced:

  * ``mean_log_ratio``: mean of r, the systematic scale (exp(mean_log_ratio) = 0.82 means the
    exported depths are 18 % nearer);
  * ``mean_abs_log_ratio``: mean of |r|;
  * ``within_1.25``: fraction of pixels with |r| < ln(PARITY_RATIO);
  * ``max_rel_diff``: max over ALL images' pixels of |pred - reference| / reference (not a mean).

  Args:
    gts: ground truth (N, H, W, 1) metres, 0 = invalid (or a list of (H_i, W_i, 1)).
    reference: the Keras model's depths, like ``gts``.
    preds: the exported model's depths, like ``gts``.
    protocol: `tfdepth.metrics` protocol name or EvalProtocol.
  Returns:
    dict with the PARITY_KEYS and ``num_images`` (images with evaluated pixels).
  Raises:
    InvalidInputError: shapes differ or are not (N, H, W, 1), a depth is NaN, or no image has an
      evaluated pixel.
  """
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  protocol = metrics.get_protocol(protocol)
  arrays = {"gts": gts, "reference": reference, "preds": preds}
  arrays = {k: [np.asarray(a, np.float32) for a in v] for k, v in arrays.items()}
  num = len(arrays["gts"])
  for name, images in arrays.items():
    if len(images) != num:
      raise InvalidInputError(f"parity_table: {name} has {len(images)} images, gts {num}")
    for i, a in enumerate(images):
      if a.ndim != 3 or a.shape[-1] != 1 or a.shape != arrays["gts"][i].shape:
        raise InvalidInputError(f"parity_table: {name} must be (N, H, W, 1) like gts "
                                f"(image {i}: {arrays['gts'][i].shape}), got {a.shape}")
      if name != "gts" and np.isnan(a).any():
        raise InvalidInputError(f"parity_table: {name} has NaN depths; expected metres")
  lo, hi = protocol.min_depth, protocol.max_depth
  per_image, max_rel = [], 0.0
  for gt, ref, pred in zip(arrays["gts"], arrays["reference"], arrays["preds"]):
    mask = metrics.evaluation_mask(gt, protocol)
    if not mask.any():
      continue
    ref_v = np.clip(ref[mask], lo, hi).astype(np.float64)
    pred_v = np.clip(pred[mask], lo, hi).astype(np.float64)
    r = np.log(pred_v / ref_v)
    per_image.append((r.mean(), np.abs(r).mean(), (np.abs(r) < np.log(PARITY_RATIO)).mean()))
    max_rel = max(max_rel, float(np.max(np.abs(pred_v - ref_v) / ref_v)))
  if not per_image:
    raise InvalidInputError(f"parity_table: none of the {num} images has an evaluated pixel "
                            f"under protocol {protocol.name!r}")
  means = np.mean(np.asarray(per_image), axis=0)
  return {"mean_log_ratio": float(means[0]), "mean_abs_log_ratio": float(means[1]),
          PARITY_WITHIN_KEY: float(means[2]), "max_rel_diff": max_rel,
          "num_images": len(per_image)}


def keras_predict(model, images, batch_size=8):
  """Depth (N, H, W, 1) float32 of a Keras depth model on float [0, 1] images at its input size,
  in batches."""
  out = []
  for i in range(0, len(images), batch_size):
    out.append(np.asarray(model(images[i:i + batch_size], training=False)["depth"], np.float32))
  return np.concatenate(out)


def keras_reference(model, images):
  """The Keras model's depth (N, H, W, 1) on images (N, H, W, 3) of any size, computed as the
  runners compute theirs: images resized to the model's input size
  (`tfdepth.data.augment.resize_images`), depth resized back to (H, W) as disparity."""
  from export._common import model_input_size  # pylint: disable=g-import-not-at-top
  from tfdepth.data import augment  # pylint: disable=g-import-not-at-top
  size = tuple(model_input_size(model))
  x = np.asarray(images, np.float32)
  in_hw = tuple(x.shape[1:3])
  if in_hw != size:
    x = augment.resize_images(x, *size).numpy()
  depth = np.asarray(model(x, training=False)["depth"], np.float32)
  return litert_runner._resize_back(depth, in_hw)  # pylint: disable=protected-access


def _test_set(test_images, test_depths, input_size):
  """``(images, depths, at_network_size)``: lists of per-image float32 arrays (H_i, W_i, 3) /
  (H_i, W_i, 1); ``at_network_size`` when every image has the model's input size."""
  if isinstance(test_images, np.ndarray):
    test_images = list(check_images(test_images, "test_images"))
  else:
    test_images = [check_images(np.asarray(im)[np.newaxis], f"test_images[{i}]")[0]
                   for i, im in enumerate(test_images)]
  if test_depths is None or len(test_depths) != len(test_images) or not test_images:
    raise InvalidInputError(
        f"test_depths must hold one depth map per test image ({len(test_images)}), got "
        f"{None if test_depths is None else len(test_depths)}")
  depths = []
  for i, (im, d) in enumerate(zip(test_images, test_depths)):
    d = np.asarray(d, np.float32)
    if d.shape != im.shape[:2] + (1,):
      raise InvalidInputError(f"test_depths[{i}] must be {im.shape[:2] + (1,)} like its image, "
                              f"got {d.shape}")
    depths.append(d)
  at_network = all(tuple(im.shape[:2]) == tuple(input_size) for im in test_images)
  return test_images, depths, at_network


def _predict_each(predict, images):
  """``predict`` ((1, H, W, 3) -> (1, H, W, 1)) on each image: a list of (H_i, W_i, 1)."""
  return [np.asarray(predict(im[np.newaxis]), np.float32)[0] for im in images]


def export_artefact(model, metadata, fmt, output_dir, representative_dataset=None,
                    io_dtype="uint8", qat_options=None, bias_correction=False):
  """Writes the artefact of ``fmt`` under ``output_dir``; returns its path.

  Args:
    model: Keras 3 depth model (float32 [0, 1] in, ``{"depth"}`` out).
    metadata: export metadata (``"experiment"`` required; see `export._common.make_metadata`).
    fmt: one of ``FORMATS``.
    output_dir: directory for the artefact (``saved_model/`` or ``model_<fmt>.tflite``).
    representative_dataset: calibration images for ``tflite_int8`` (required there).
    io_dtype: ``tflite_int8`` / ``tflite_qat`` input dtype name (``"uint8"``, ``"int8"``,
      ``"float32"``); the output is float32 metres when the model has an output tail kept in
      float (`export.float_tail`), else of this dtype too.
    qat_options: for ``tflite_qat``: kwargs of `export.qat.quantization_aware_training` with at
      least ``builder``, ``builder_kwargs`` and ``train_data``.
    bias_correction: ``tflite_int8`` only: correct the head's bias on the calibration images
      (`export.bias_correction`; `export.tflite.convert_to_tflite`).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  check_format(fmt)
  if bias_correction and fmt != "tflite_int8":
    raise InvalidInputError(f"bias_correction is a tflite_int8 option, got format {fmt!r}")
  os.makedirs(output_dir, exist_ok=True)
  if fmt == "saved_model":
    path = os.path.join(output_dir, "saved_model")
    export_saved_model(model, path, metadata)
    return path
  from export._common import make_metadata  # pylint: disable=g-import-not-at-top
  metadata = make_metadata(model, metadata)
  path = os.path.join(output_dir, f"model_{fmt}.tflite")
  if os.path.exists(path):
    raise InvalidInputError(
        f"{path!r} already exists; export into another output_dir or remove it first (an "
        "export never replaces an artefact, as with the SavedModel)")
  if fmt == "tflite_qat":
    from export import qat  # pylint: disable=g-import-not-at-top
    options = dict(qat_options or {})
    missing = [k for k in ("builder", "train_data") if k not in options]
    if missing:
      raise InvalidInputError(f"tflite_qat needs qat_options with {missing}, got "
                              f"{sorted(options)}")
    options.setdefault("io_dtype", io_dtype)
    qat.quantization_aware_training(model, output_path=path, **options)
  else:
    flatbuffer = tflite_lib.convert_to_tflite(
        model, fmt, representative_dataset=representative_dataset,
        io_dtype=tf.as_dtype(io_dtype) if fmt == "tflite_int8" else tf.float32,
        bias_correction=bias_correction)
    with open(path, "wb") as f:
      f.write(flatbuffer)
  # The completed metadata (input size, normalisation, depth range, version) next to the file.
  with open(path + ".metadata.json", "w") as f:
    json.dump(metadata, f, indent=2, sort_keys=True)
  return path


def export_and_report(model, metadata, fmt, output_dir, test_images=None, test_depths=None,
                      protocol=None, representative_dataset=None, io_dtype="uint8",
                      qat_options=None, num_runs=DEFAULT_NUM_RUNS, threads=DEFAULT_THREADS,
                      reference_metrics=None, reference_depths=None, bias_correction=False):
  """Exports ``model`` as ``fmt`` and writes the report next to it.

  Args:
    model, metadata, fmt, output_dir, representative_dataset, io_dtype, qat_options,
      bias_correction: see `export_artefact`.
    test_images: float32 [0, 1] images, or None (no metrics): (N, H, W, 3), or a list of
      (H_i, W_i, 3) of any sizes (e.g. a test split at its stored resolution). Images not at
      the model's size are resized to it and the depth back to the image as disparity (the
      runners' `predict`, the SavedModel's serving), so the metrics are those `tfdepth-eval`
      computes at the ground truth's size.
    test_depths: float32 ground truth (N, H, W, 1) metres, 0 = invalid, or a list of
      (H_i, W_i, 1), one per image at its size.
    protocol: `tfdepth.metrics` protocol name for the metrics.
    num_runs: timed runs per latency figure.
    threads: thread counts to time.
    reference_metrics: optional ``metric_table`` of the Keras model on the same test data (the
      ``"keras"`` row), to skip recomputing it when one model is exported to several formats.
    reference_depths: optional Keras depths on ``test_images`` (one (H_i, W_i, 1) per image) for
      ``parity``, likewise (computed when None).
  Returns:
    The report dict (also written to ``output_dir/export_report_<fmt>.{json,md}``).
  """
  if test_images is not None:
    if test_depths is None or protocol is None:
      raise InvalidInputError("test_images need test_depths and protocol, got "
                              f"test_depths={type(test_depths).__name__}, protocol={protocol!r}")
    from export._common import model_input_size  # pylint: disable=g-import-not-at-top
    test_images, test_depths, at_network = _test_set(test_images, test_depths,
                                                     model_input_size(model))
  path = export_artefact(model, metadata, fmt, output_dir, representative_dataset, io_dtype,
                         qat_options, bias_correction)
  report = {"format": fmt, "artefact": os.path.abspath(path), "metadata": metadata,
            "bias_correction": bool(bias_correction),
            "size_bytes": artefact_size(path),
            "latency": measure_latency(path, fmt, num_runs, threads)}
  if fmt != "saved_model":
    report["ops"] = litert_runner.op_summary(path)
  if test_images is not None:
    exported = _predict_each(make_runner(path, fmt).predict, test_images)
    report["num_test_images"] = int(len(test_images))
    report["ground_truth_size"] = GROUND_TRUTH_SIZE_NOTE["network" if at_network else "native"]
    # A preset's name, or the name of a derived protocol (e.g. "synthetic_street_median").
    report["protocol"] = protocol if isinstance(protocol, str) else protocol.name
    if reference_depths is None:
      reference_depths = _predict_each(lambda x: keras_reference(model, x), test_images)
    if reference_metrics is None:
      reference_metrics = metric_table(test_depths, reference_depths, protocol)
    report["metrics"] = {"keras": dict(reference_metrics),
                         fmt: metric_table(test_depths, exported, protocol)}
    report["parity"] = parity_table(test_depths, reference_depths, exported, protocol)
  write_report(report, output_dir)
  return report


def report_markdown(report):
  """A Markdown summary of a report dict."""
  lines = [f"# Export report: `{report['format']}`", "",
           f"- artefact: `{report['artefact']}`",
           f"- size: {report['size_bytes'] / 1e6:.3f} MB"]
  if "ops" in report:
    ops = report["ops"]
    lines.append(f"- XNNPACK partitions: {ops['num_delegate_partitions']}; QUANTIZE / DEQUANTIZE: "
                 f"{ops['num_quantize']} / {ops['num_dequantize']}; float ops: "
                 f"{ops['float_ops'] if ops['num_quantize'] else 'all'}")
  lines.append("")
  lines += ["| threads | median ms | p10 ms | p90 ms |", "|---|---|---|---|"]
  for n, s in report["latency"].items():
    lines.append(f"| {n} | {s['median_ms']:.3f} | {s['p10_ms']:.3f} | {s['p90_ms']:.3f} |")
  if "metrics" in report:
    names = list(next(iter(report["metrics"].values())))
    lines += ["", f"Metrics on {report['num_test_images']} test images "
              f"(protocol `{report['protocol']}`; "
              f"{report.get('ground_truth_size', GROUND_TRUTH_SIZE_NOTE['network'])}):", "",
              "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row, table in report["metrics"].items():
      lines.append(f"| {row} | " + " | ".join(f"{table[k]:.4f}" for k in names) + " |")
  if "parity" in report:
    p = report["parity"]
    lines += ["", f"Parity with the Keras model (evaluated pixels): depth ratio "
              f"exp(mean ln) {np.exp(p['mean_log_ratio']):.4f}, mean |ln ratio| "
              f"{p['mean_abs_log_ratio']:.4f}, within {PARITY_RATIO}x: {p[PARITY_WITHIN_KEY]:.4f}, "
              f"max relative difference {p['max_rel_diff']:.3g}."]
  return "\n".join(lines) + "\n"


def write_report(report, output_dir):
  """Writes ``export_report_<fmt>.json`` and ``export_report_<fmt>.md``; returns their paths."""
  os.makedirs(output_dir, exist_ok=True)
  json_path = os.path.join(output_dir, REPORT_JSON.format(fmt=report["format"]))
  md_path = os.path.join(output_dir, REPORT_MD.format(fmt=report["format"]))
  with open(json_path, "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")
  with open(md_path, "w") as f:
    f.write(report_markdown(report))
  return json_path, md_path
