"""Export formats compared: size, CPU latency (1 and 2 threads) and accuracy on the test split.

    python -m benchmarks.export_formats                       # train (cached), export, evaluate
    python -m benchmarks.export_formats --train_cpu_seconds=20 --num_train=32 --num_test=8 \
        --num_calibration=8 --qat_train_images=16 --qat_epochs=1 --num_runs=2   # smoke run
    python -m benchmarks.export_formats --random_weights      # size / latency only, no training
    python -m benchmarks.export_formats --markdown            # README table from the JSON

Models (issue 7): FastDepth (Wofk et al. 2019, width 1.0, sigmoid x 80 m head) at 224x224 and the
Monodepth2-R18 depth net (Godard et al. 2019) + ``disp_to_depth`` at 192x640. Each is TRAINED
SUPERVISED, briefly, on the synthetic ``street`` world rendered at its input size, with the
``fastdepth_synthetic_street`` experiment's recipe (`trainers.supervised.SupervisedDepthModel`,
SILog + 0.1 L1, Adam constant (2e-3 FastDepth, 1e-3 Monodepth2), ground truth beyond 80 m masked)
for ``--train_cpu_seconds`` of CPU time each, the first step's tracing included (Monodepth2 is
normally self-supervised; supervised training is the quickest way to weights whose accuracy means
something). Weights are cached in ``--weights_dir`` (key: model, training clips, budget, rate), so
reruns skip training; the rendered data is cached by TFDS in ``--data_dir`` (rendering 512 + 64
clips at 192x640 takes minutes on 2 cores: ~0.3 s of CPU per clip).

Each trained model is exported to every format: ``saved_model``, ``tflite_fp32``, ``tflite_fp16``,
``tflite_dynamic``, ``tflite_int8`` (calibrated on ``--num_calibration`` train-split images through
the training pipeline's preprocessing, ``tfdepth.data.make_supervised_dataset``, no augmentation;
uint8 input) and ``tflite_qat`` (`export.qat`, fine-tuned on ``--qat_train_images`` train images,
both models with the same settings; the tf_keras twin of Monodepth2 comes from
``export._testing.monodepth2_depth_model(layers=tf_keras.layers)``). Both int8 formats keep the
output tail in float (`export.float_tail`: Monodepth2's sigmoid + ``disp_to_depth``, FastDepth's
sigmoid x 80 m) and output float32 metres; before (fully quantised tail, uint8 output) Monodepth2's
int8 AbsRel was 0.2860 (Keras 0.1793) and its QAT file failed at run time in the int8 ``DIV``.
The row ``tflite_int8_bias_corrected`` is the ``tflite_int8`` export with its head's bias corrected
by the int8 - float shift measured on the calibration images (`export.bias_correction`).
Every artefact is evaluated on the first ``--num_test`` test-split images with the
`tfdepth.metrics` ``synthetic_street`` protocol next to the Keras model, and compared with the
Keras model's depths pixel by pixel (`export.report.parity_table`: fraction within 1.25x, depth
scale exp(mean ln ratio); `export.report.export_and_report`). The JSON also records, per TFLite format, the op types
(`export.litert_runner.op_summary`), and per model the relative AbsRel drift of int8 / QAT vs the
Keras model and the int8 speed-up / size ratio vs float32 TFLite.

Latency: median of ``--num_runs`` single-image runs after warm-up (`export.report`); on a shared
machine it is an upper bound. For 1-thread TFLite the JSON also has ``median_cpu_ms`` (CPU time of
the invoking thread, which runs the whole 1-thread interpreter; other jobs do not inflate it) and
the summary ``int8_speedup_1thr_cpu``.

int8 speed (issue 7 target: >= 2.5x float32 TFLite). Measured as per-thread CPU time (1 thread,
robust to other jobs on the machine), random weights:
  Monodepth2-R18 192x640: fp32 274 ms / int8 152 ms (1.8x) as converted before `export.rewrite`
    (22 XNNPACK partitions: MIRROR_PAD and TILE run in reference kernels); with the rewrite
    185 ms / 56 ms (3.3x), one partition. ELU stays float in int8 (no quantised ELU in the
    converter): ~3 % of the int8 time.
  FastDepth 224x224: 22.5 / 9.8 ms (2.3x) before, 18.8 / 9.1 ms (2.1x) after the rewrite: the
    rewrite speeds float32 up more than int8. Per-op profile (trained weights, 1 thread pinned
    to one core, CPU time; differences of Keras prefixes converted alone, fp32 / int8 ms): the
    int8 graph is one XNNPACK partition, int8 everywhere but the float tail, no QUANTIZE /
    DEQUANTIZE inside. Pointwise convs: encoder 11.1 / 2.8 (4.0x), decoder 2.0 / 0.7 (3.0x).
    Depthwise convs do NOT get faster: encoder 3x3 ~1.0 / 1.05, decoder 5x5 1.95 / 2.06
    (each conv converted alone: `benchmarks.int8_op_speedup`, 18 depthwise convs 3.01 / 2.89 ms,
    19 pointwise 12.15 / 3.66 ms): XNNPACK's x86
    int8 depthwise kernels widen to int32 (mul32), no faster than its float FMA kernels, so the
    ~3 ms of depthwise work (40 % of int8) caps the ratio near 2.3x on this CPU. Not memory-bound
    (the 112x112x64 5x5 conv reads 0.8 MB in 1 ms). Upsampling (CONCATENATION + DEPTH_TO_SPACE)
    0.9 / 0.35, skip ADDs ~0.9 / 0.1, head conv 0.54 / 0.28. Runtime options change nothing
    (``experimental_default_delegate_latest_features``: 7.87 vs 7.92 ms int8; no YNNPACK in this
    ai-edge-litert wheel). The x 80 m depthwise conv of the tail is converted as a MUL
    (`export.rewrite.ScalarMultiply`): int8 8.06 -> 7.81 ms, float32 18.05 -> 17.92 ms.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import RESULTS_DIR, print_table, write_result

NAME = "export_formats"
# "tflite_int8_bias_corrected": the tflite_int8 export with ``bias_correction=True``
# (`export.bias_correction`), a row of its own.
INT8_BIAS_CORRECTED = "tflite_int8_bias_corrected"
FORMATS = ("saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8",
           INT8_BIAS_CORRECTED, "tflite_qat")
FORMAT_LABELS = {"saved_model": "SavedModel", "tflite_fp32": "TFLite fp32",
                 "tflite_fp16": "TFLite fp16", "tflite_dynamic": "TFLite dynamic-range",
                 "tflite_int8": "TFLite full int8",
                 INT8_BIAS_CORRECTED: "TFLite full int8, head bias corrected",
                 "tflite_qat": "TFLite QAT int8"}


def export_format(fmt):
  """``(export.report format, bias_correction)`` of a benchmark format."""
  return ("tflite_int8", True) if fmt == INT8_BIAS_CORRECTED else (fmt, False)
# Calibration images without training (noise; enough for a representative size/latency).
NUM_RANDOM_CALIBRATION = 8
FASTDEPTH_SIZE = (224, 224)  # Wofk et al. 2019 (FastDepth), NYU Depth v2 input
MONODEPTH2_SIZE = (192, 640)  # Godard et al. 2019 (Monodepth2), KITTI input
FASTDEPTH_WIDTH = 1.0  # FastDepth's MobileNet width multiplier in the paper
# Recipe of the supervised training (the demo experiment's loss, optimiser and depth cap).
BASE_EXPERIMENT = "fastdepth_synthetic_street"
# Batch sizes: the base experiment's 16 for FastDepth; 8 for Monodepth2-R18 at 192x640, the
# batch of tfdepth's monodepth2_synthetic_street experiment (Monodepth2 uses 12 on KITTI).
FASTDEPTH_BATCH = 16
MONODEPTH2_BATCH = 8
# Adam learning rates of the supervised training: the demo experiment's 2e-3 for FastDepth; 1e-3
# for the Monodepth2 depth net (benchmarks/supervised_learning.py's rate for the convolutional
# nets; at 2e-3 its loss rose from 4.9 to 9.2 in 49 steps at 192x640).
FASTDEPTH_LEARNING_RATE = 2e-3
MONODEPTH2_LEARNING_RATE = 1e-3
# Training budget per model (CPU seconds of this process, all threads, so that other jobs on the
# machine do not shrink it; 300 s of wall time on a loaded machine gave ~50 steps, too few for
# accuracy figures that mean anything) and data.
DEFAULT_TRAIN_CPU_SECONDS = 900
DEFAULT_NUM_TRAIN = 512  # the base experiment's number of training clips
DEFAULT_NUM_TEST = 64  # the base experiment's test split size
# Validation clips rendered (unused: the budget is fixed in time; TFDS needs a non-empty split).
NUM_VALIDATION = 4
# Steps per Keras epoch of the time-budgeted fit (only sets the logging granularity).
STEPS_PER_EPOCH = 20
MAX_EPOCHS = 100000
DEFAULT_NUM_CALIBRATION = 100  # post-training quantization guide: ~100-500 samples
DEFAULT_QAT_TRAIN_IMAGES = 256
DEFAULT_QAT_EPOCHS = 2
# QAT learning rate: 1/10 of the training rate (export.cli does the same).
QAT_LR_FACTOR = 0.1
# QAT targets (`--qat_targets`): "ground_truth" = the training split's depth (default),
# "float_model" = the trained float model's own depth (self-distillation, as `export.cli` does for
# self-supervised experiments). Self-distillation measured worse here (`python -m
# benchmarks.export_formats --qat_train_images=128 --formats=tflite_qat --qat_targets=float_model`,
# 2026-12-04, idle machine): QAT AbsRel FastDepth 0.0950 (+4.9 %) and Monodepth2 0.3092 (+72 %)
# against 0.0933 (+3.1 %) and 0.2401 (+34 %) with the ground truth.
QAT_TARGETS = ("ground_truth", "float_model")
# Characters of a failed format's error message kept in the JSON.
ERROR_CHARS = 600
DEFAULT_WEIGHTS_DIR = os.path.join(os.path.expanduser("~"), ".cache", "tfdepth", NAME)
# Issue 7 targets: int8 AbsRel at most 2 % (relative) above float; int8 >= 2.5x faster than and
# ~4x smaller than float32 TFLite.
TARGET_INT8_ABS_REL_DRIFT = 0.02
TARGET_INT8_SPEEDUP = 2.5
TARGET_INT8_SIZE_RATIO = 4.0
# QAT builders ("module:function" called with layers=tf_keras.layers in the QAT worker): the
# functions that build_network uses for each model.
QAT_BUILDERS = {"fastdepth": "tfdepth.models.fastdepth:build_fastdepth",
                "monodepth2": "export._testing:monodepth2_depth_model"}
MONODEPTH2_NUM_LAYERS = 18  # Monodepth2-R18 (Godard et al. 2019)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A benchmarked model: its key in the JSON, input size, training batch and QAT support."""
  key: str
  label: str
  size: tuple
  batch_size: int
  qat: bool
  learning_rate: float


MODELS = {
    "fastdepth": ModelSpec("fastdepth_224", "FastDepth 224×224", FASTDEPTH_SIZE, FASTDEPTH_BATCH,
                           True, FASTDEPTH_LEARNING_RATE),
    "monodepth2": ModelSpec("monodepth2_r18_192x640", "Monodepth2-R18 192×640", MONODEPTH2_SIZE,
                            MONODEPTH2_BATCH, True, MONODEPTH2_LEARNING_RATE),
}


def qat_builder(name, config):
  """``(builder, builder_kwargs)`` of `export.qat` for model ``name``: the builder that
  `build_network` uses, with the kwargs that rebuild the benchmarked network."""
  spec = MODELS[name]
  if name == "fastdepth":
    return QAT_BUILDERS[name], {"input_shape": list(spec.size) + [3], **dict(config.model.kwargs)}
  return QAT_BUILDERS[name], {"input_size": list(spec.size), "num_layers": MONODEPTH2_NUM_LAYERS}


def build_network(name, config=None):
  """The float32 Keras depth model of ``name`` ("fastdepth" | "monodepth2")."""
  from export._testing import monodepth2_depth_model  # pylint: disable=g-import-not-at-top
  if name == "fastdepth":
    from trainers import common  # pylint: disable=g-import-not-at-top
    config = config or experiment_config(MODELS[name], DEFAULT_NUM_TRAIN, DEFAULT_NUM_TEST)
    return common.build_network(config)
  del config
  return monodepth2_depth_model(MODELS[name].size, num_layers=MONODEPTH2_NUM_LAYERS)


def experiment_config(spec, num_train, num_test):
  """The base experiment resized to ``spec``'s input (data rendered at that size)."""
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  h, w = spec.size
  overrides = [f"data.height={h}", f"data.width={w}", f"data.builder_kwargs.height={h}",
               f"data.builder_kwargs.width={w}", f"data.builder_kwargs.num_train={num_train}",
               f"data.builder_kwargs.num_validation={NUM_VALIDATION}",
               f"data.builder_kwargs.num_test={num_test}", "optimizer.schedule=constant",
               f"train.batch_size={spec.batch_size}", "train.mixed_precision=float32",
               f"optimizer.learning_rate={spec.learning_rate}",
               f"model.kwargs.width_multiplier={FASTDEPTH_WIDTH}"]
  return experiments.apply_overrides(experiments.get_experiment(BASE_EXPERIMENT), overrides)


def _time_budget_callback(seconds):
  import keras  # pylint: disable=g-import-not-at-top

  class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` after the first batch that ends past ``seconds`` of CPU time (process)."""

    def __init__(self):
      super().__init__()
      self.start = None
      self.steps = 0
      self.losses = []

    def on_train_begin(self, logs=None):
      self.start = time.process_time()

    def on_train_batch_end(self, batch, logs=None):
      self.steps += 1
      if logs and "loss" in logs:
        self.losses.append(float(logs["loss"]))
      if time.process_time() - self.start >= seconds:
        self.model.stop_training = True

  return TimeBudget()


def train_or_load(name, config, builder, train_seconds, weights_dir):
  """Trains ``name`` supervised for ``train_seconds`` of CPU time (or loads the cached weights).

  Returns:
    (network, info) with info: weights path, steps, seconds, first / last loss, cached flag.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  from trainers import supervised  # pylint: disable=g-import-not-at-top
  spec = MODELS[name]
  num_train = config.data.builder_kwargs["num_train"]
  stem = (f"{spec.key}_train{num_train}_{int(train_seconds)}cpus_"
          f"lr{config.optimizer.learning_rate:g}")
  path = os.path.join(weights_dir, stem + ".weights.h5")
  info_path = os.path.join(weights_dir, stem + ".json")
  common.set_precision("float32")
  keras.utils.set_random_seed(config.train.seed)
  network = build_network(name, config)
  if os.path.exists(path) and os.path.exists(info_path):
    network.load_weights(path)
    with open(info_path) as f:
      info = json.load(f)
    info["cached"] = True
    return network, info
  trainer = supervised.SupervisedDepthModel(
      network, supervised.loss_terms_from_config(config.losses), max_depth=config.max_depth,
      name="supervised")
  trainer.compile(optimizer=common.build_optimizer(config.optimizer, 1))
  ds = common.make_datasets(config, builder, splits=("train",))["train"]
  budget = _time_budget_callback(train_seconds)
  start, cpu_start = time.perf_counter(), time.process_time()
  trainer.fit(ds, epochs=MAX_EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, callbacks=[budget],
              verbose=0)
  info = {"weights": path, "train_cpu_seconds_budget": train_seconds,
          "train_cpu_seconds": time.process_time() - cpu_start,
          "train_seconds": time.perf_counter() - start, "steps": budget.steps,
          "batch_size": config.train.batch_size, "num_train_clips": num_train,
          "first_loss": budget.losses[0] if budget.losses else None,
          "last_loss": budget.losses[-1] if budget.losses else None,
          "recipe": f"{BASE_EXPERIMENT} losses/optimizer, supervised, constant lr "
                    f"{config.optimizer.learning_rate}"}
  os.makedirs(weights_dir, exist_ok=True)
  network.save_weights(path)
  with open(info_path, "w") as f:
    json.dump(info, f, indent=2)
  info["cached"] = False
  return network, info


def _split_arrays(config, builder, split, limit):
  from export import cli  # pylint: disable=g-import-not-at-top
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top
  ds = make_supervised_dataset(builder, split=split, batch_size=config.train.batch_size,
                               height=config.data.height, width=config.data.width, training=False)
  return cli._collect(ds, limit)  # pylint: disable=protected-access


def drift_summary(per_format):
  """Relative AbsRel drift of int8 / QAT vs Keras and int8 speed / size ratios vs float32."""
  out = {}
  keras_row = next((f["metrics"]["keras"] for f in per_format.values()
                    if isinstance(f, dict) and "metrics" in f), None)
  for fmt in ("tflite_int8", INT8_BIAS_CORRECTED, "tflite_qat", "tflite_dynamic", "tflite_fp16",
              "tflite_fp32"):
    f = per_format.get(fmt)
    if keras_row and isinstance(f, dict) and "metrics" in f:
      out[f"{fmt}_abs_rel_drift"] = (f["metrics"][fmt]["abs_rel"] / keras_row["abs_rel"]) - 1.0
  fp32, int8 = per_format.get("tflite_fp32"), per_format.get("tflite_int8")
  if isinstance(fp32, dict) and isinstance(int8, dict) and "latency" in fp32 and "latency" in int8:
    for n in fp32["latency"]:
      out[f"int8_speedup_{n}thr"] = (fp32["latency"][n]["median_ms"]
                                     / int8["latency"][n]["median_ms"])
    if "median_cpu_ms" in fp32["latency"].get("1", {}) and "median_cpu_ms" in int8["latency"].get(
        "1", {}):
      out["int8_speedup_1thr_cpu"] = (fp32["latency"]["1"]["median_cpu_ms"]
                                      / int8["latency"]["1"]["median_cpu_ms"])
    out["int8_size_ratio"] = fp32["size_bytes"] / int8["size_bytes"]
  return out


def _entry(report, fmt):
  """The JSON entry of a benchmark format ``fmt`` (its metrics row keyed by ``fmt``)."""
  entry = {"size_bytes": report["size_bytes"], "latency": report["latency"]}
  for key in ("metrics", "parity", "ops"):
    if key in report:
      entry[key] = report[key]
  if "metrics" in entry:
    entry["metrics"] = {"keras": entry["metrics"]["keras"],
                        fmt: entry["metrics"][report["format"]]}
  return entry


def run_trained(names, formats, args, on_progress=None):
  """Trains (or loads), exports to every format and evaluates each model in ``names``."""
  from export import report as report_lib  # pylint: disable=g-import-not-at-top
  from export import tflite  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  figures = {}
  for name in names:
    spec = MODELS[name]
    config = experiment_config(spec, args.num_train, args.num_test)
    t0 = time.perf_counter()
    builder = common.prepare_builder(config.data, args.data_dir)
    data_s = time.perf_counter() - t0
    network, train_info = train_or_load(name, config, builder, args.train_cpu_seconds,
                                        args.weights_dir)
    test_images, test_depths = _split_arrays(config, builder, config.data.test_split,
                                             args.num_test)
    protocol = config.metrics_protocol
    keras_depths = report_lib.keras_predict(network, test_images)
    keras_metrics = report_lib.metric_table(test_depths, keras_depths, protocol)
    entry = {"params": int(network.count_params()), "train": train_info,
             "qat_targets": args.qat_targets,
             "data_prepare_seconds": data_s, "num_test_images": int(len(test_images)),
             "protocol": protocol, "keras_metrics": keras_metrics}
    rep = qat_options = None
    if "tflite_int8" in formats or INT8_BIAS_CORRECTED in formats:
      images, _ = _split_arrays(config, builder, config.data.train_split, args.num_calibration)
      rep = tflite.representative_dataset_from(list(images), args.num_calibration)
    if "tflite_qat" in formats and spec.qat:
      images, depths = _split_arrays(config, builder, config.data.train_split,
                                     args.qat_train_images)
      builder_name, builder_kwargs = qat_builder(name, config)
      qat_options = {"builder": builder_name, "builder_kwargs": builder_kwargs,
                     # Without "depth", export.qat fine-tunes towards the float model's output.
                     "train_data": ({"images": images, "depth": depths}
                                    if args.qat_targets == "ground_truth" else {"images": images}),
                     "epochs": args.qat_epochs,
                     "learning_rate": config.optimizer.learning_rate * QAT_LR_FACTOR,
                     "batch_size": config.train.batch_size}
    metadata = {"experiment": f"{BASE_EXPERIMENT}@{spec.key}", "model": spec.key,
                "depth_range": [0.1, float(config.max_depth)]}
    for fmt in formats:
      if fmt == "tflite_qat" and not spec.qat:
        entry[fmt] = {"skipped": f"no QAT builder for {name}"}
        continue
      export_fmt, bias_correction = export_format(fmt)
      with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        try:
          r = report_lib.export_and_report(
              network, metadata, export_fmt, tmp, test_images=test_images,
              test_depths=test_depths, protocol=protocol,
              representative_dataset=rep if export_fmt == "tflite_int8" else None,
              qat_options=qat_options if fmt == "tflite_qat" else None, num_runs=args.num_runs,
              reference_metrics=keras_metrics, reference_depths=keras_depths,
              bias_correction=bias_correction)
        except Exception as e:  # pylint: disable=broad-except
          # A format that fails to convert or to run is a result too: record it, go on.
          entry[fmt] = {"error": f"{type(e).__name__}: {str(e)[-ERROR_CHARS:]}",
                        "export_and_report_seconds": time.perf_counter() - t0}
          print(f"{spec.key} {fmt}: FAILED {entry[fmt]['error']}", flush=True)
          if on_progress:
            on_progress({**figures, spec.key: entry})
          continue
      entry[fmt] = _entry(r, fmt)
      entry[fmt]["export_and_report_seconds"] = time.perf_counter() - t0
      m = r["metrics"][export_fmt]
      print(f"{spec.key} {fmt}: {r['size_bytes'] / 1e6:.2f} MB, "
            f"{r['latency']['1']['median_ms']:.2f} / {r['latency']['2']['median_ms']:.2f} ms, "
            f"AbsRel {m['abs_rel']:.4f} (Keras {keras_metrics['abs_rel']:.4f}), "
            f"delta1 {m['delta1']:.4f}; vs Keras: within {report_lib.PARITY_RATIO}x "
            f"{r['parity'][report_lib.PARITY_WITHIN_KEY]:.4f}, scale {np.exp(r['parity']['mean_log_ratio']):.4f}",
            flush=True)
      if on_progress:   # a run that dies later keeps what it measured
        on_progress({**figures, spec.key: entry})
    entry["summary"] = drift_summary(entry)
    figures[spec.key] = entry
  return figures


def run_random(names, formats, num_runs):
  """Size and latency of randomly initialised models (no data, no training)."""
  from export import report as report_lib  # pylint: disable=g-import-not-at-top
  from export import tflite  # pylint: disable=g-import-not-at-top
  from export._testing import spread_fastdepth  # pylint: disable=g-import-not-at-top
  figures = {}
  for name in names:
    spec = MODELS[name]
    model = (spread_fastdepth(spec.size, width_multiplier=FASTDEPTH_WIDTH)
             if name == "fastdepth" else build_network(name))
    rng = np.random.default_rng(0)
    rep = tflite.RepresentativeDataset(
        rng.uniform(size=(NUM_RANDOM_CALIBRATION,) + spec.size + (3,)).astype(np.float32))
    figures[spec.key] = {"params": int(model.count_params()), "random_weights": True}
    for fmt in formats:
      if fmt in ("tflite_qat", INT8_BIAS_CORRECTED):
        continue  # QAT needs training data; bias correction changes no size or speed
      with tempfile.TemporaryDirectory() as tmp:
        r = report_lib.export_and_report(model, {"experiment": spec.key}, fmt, tmp,
                                         representative_dataset=rep if fmt == "tflite_int8"
                                         else None, num_runs=num_runs)
      figures[spec.key][fmt] = _entry(r, fmt)
      print(f"{spec.key} {fmt}: {r['size_bytes'] / 1e6:.2f} MB, "
            f"{r['latency']['1']['median_ms']:.2f} / {r['latency']['2']['median_ms']:.2f} ms",
            flush=True)
    figures[spec.key]["summary"] = drift_summary(figures[spec.key])
  return figures


def table_rows(figures):
  """Rows (model, format, MB, ms 1 thr, ms 2 thr, AbsRel, delta1, within 1.25x of Keras, depth
  scale vs Keras) of a figures dict; the parity columns (`export.report.parity_table`) are None
  for the Keras row and for results recorded without them."""
  from export import report as report_lib  # pylint: disable=g-import-not-at-top
  rows = []
  for model_key, per_fmt in figures.items():
    label = next((s.label for s in MODELS.values() if s.key == model_key), model_key)
    if "keras_metrics" in per_fmt:
      km = per_fmt["keras_metrics"]
      rows.append([label, "Keras (reference)", None, None, None, km["abs_rel"], km["delta1"],
                   None, None])
    for fmt in FORMATS:
      f = per_fmt.get(fmt)
      if not isinstance(f, dict):
        continue
      if "skipped" in f or "error" in f:
        rows.append([label, FORMAT_LABELS[fmt] + (" (failed)" if "error" in f else ""),
                     None, None, None, None, None, None, None])
        continue
      m = f.get("metrics", {}).get(fmt, {})
      parity = f.get("parity", {})
      scale = float(np.exp(parity["mean_log_ratio"])) if "mean_log_ratio" in parity else None
      rows.append([label, FORMAT_LABELS[fmt], f["size_bytes"] / 1e6,
                   f["latency"]["1"]["median_ms"], f["latency"]["2"]["median_ms"],
                   m.get("abs_rel"), m.get("delta1"), parity.get(report_lib.PARITY_WITHIN_KEY), scale])
  return rows


def _cell(value, fmt):
  return "n/a" if value is None else format(value, fmt)


def markdown_table(record):
  """The README export table (Markdown) of a results record (benchmarks/results JSON)."""
  figures = record["figures"]
  lines = ["| model | format | size (MB) | 1 thread (ms) | 2 threads (ms) | AbsRel | δ1 "
           "| within 1.25× of Keras | depth scale vs Keras |",
           "|---|---|---|---|---|---|---|---|---|"]
  previous = None
  for label, fmt, mb, ms1, ms2, abs_rel, delta1, within, scale in table_rows(figures):
    lines.append(f"| {label if label != previous else ''} | {fmt} | {_cell(mb, '.1f')} | "
                 f"{_cell(ms1, '.1f')} | {_cell(ms2, '.1f')} | {_cell(abs_rel, '.4f')} | "
                 f"{_cell(delta1, '.4f')} | {_cell(within, '.4f')} | {_cell(scale, '.3f')} |")
    previous = label
  notes = []
  for model_key, per_fmt in figures.items():
    s = per_fmt.get("summary", {})
    parts = []
    if "tflite_int8_abs_rel_drift" in s:
      parts.append(f"int8 AbsRel drift {100 * s['tflite_int8_abs_rel_drift']:+.1f} %")
    if f"{INT8_BIAS_CORRECTED}_abs_rel_drift" in s:
      parts.append(f"head bias corrected {100 * s[f'{INT8_BIAS_CORRECTED}_abs_rel_drift']:+.1f} %")
    if "tflite_qat_abs_rel_drift" in s:
      parts.append(f"QAT {100 * s['tflite_qat_abs_rel_drift']:+.1f} %")
    if "int8_speedup_1thr" in s:
      parts.append(f"int8 {s['int8_speedup_1thr']:.2f}x / {s.get('int8_speedup_2thr', 0):.2f}x "
                   f"faster (1 / 2 threads) and {s['int8_size_ratio']:.2f}x smaller than fp32")
    if "int8_speedup_1thr_cpu" in s:
      parts.append(f"{s['int8_speedup_1thr_cpu']:.2f}x in CPU time (1 thread)")
    for fmt in FORMATS:
      failed = per_fmt.get(fmt)
      if isinstance(failed, dict) and "error" in failed:
        parts.append(f"{FORMAT_LABELS[fmt]} failed ({failed['error'].strip().splitlines()[-1]})")
    train = per_fmt.get("train")
    if train:
      seconds = train.get("train_cpu_seconds", train["train_seconds"])
      unit = "CPU s" if "train_cpu_seconds" in train else "s"
      parts.append(f"trained {train['steps']} steps x {train['batch_size']} in "
                   f"{seconds:.0f} {unit}")
    if parts:
      notes.append(f"- {model_key}: " + "; ".join(parts) + ".")
  return "\n".join(lines + [""] + notes) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="fastdepth,monodepth2",
                      help="comma list of fastdepth, monodepth2")
  parser.add_argument("--formats", default=",".join(FORMATS))
  parser.add_argument("--num_runs", type=int, default=20, help="timed runs per latency")
  parser.add_argument("--random_weights", action="store_true",
                      help="no training, no data: size and latency only")
  parser.add_argument("--train_cpu_seconds", type=float, default=DEFAULT_TRAIN_CPU_SECONDS,
                      help="training budget per model, CPU seconds of this process")
  parser.add_argument("--weights_dir", default=DEFAULT_WEIGHTS_DIR,
                      help="cache of trained weights (reruns with the same settings load them)")
  parser.add_argument("--num_train", type=int, default=DEFAULT_NUM_TRAIN,
                      help="synthetic street training clips rendered")
  parser.add_argument("--num_test", type=int, default=DEFAULT_NUM_TEST,
                      help="test clips rendered and evaluated")
  parser.add_argument("--num_calibration", type=int, default=DEFAULT_NUM_CALIBRATION)
  parser.add_argument("--qat_train_images", type=int, default=DEFAULT_QAT_TRAIN_IMAGES)
  parser.add_argument("--qat_epochs", type=int, default=DEFAULT_QAT_EPOCHS)
  parser.add_argument("--qat_targets", default=QAT_TARGETS[0], choices=QAT_TARGETS,
                      help="QAT fine-tuning targets: the float model's depth or the ground truth")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir")
  parser.add_argument("--markdown", action="store_true",
                      help="print the README table of --results and exit (no run)")
  parser.add_argument("--results", default=os.path.join(RESULTS_DIR, f"{NAME}.json"),
                      help="JSON read by --markdown")
  parser.add_argument("--result_name", default=NAME,
                      help="writes benchmarks/results/<result_name>.json (smoke: another name)")
  args = parser.parse_args(argv)
  if args.markdown:
    with open(args.results) as f:
      print(markdown_table(json.load(f)), end="")
    return
  names = [m for m in args.models.split(",") if m]
  unknown = [m for m in names if m not in MODELS]
  formats = [f for f in args.formats.split(",") if f]
  bad = [f for f in formats if f not in FORMATS]
  if unknown or bad:
    parser.error(f"unknown models {unknown} / formats {bad}; expected models from "
                 f"{sorted(MODELS)}, formats from {FORMATS}")
  command = " ".join([os.path.basename(sys.executable), "-m", f"benchmarks.{NAME}"]
                     + list(argv if argv is not None else sys.argv[1:]))
  if args.random_weights:
    figures = run_random(names, formats, args.num_runs)
  else:
    figures = run_trained(names, formats, args,
                          on_progress=lambda f: write_result(args.result_name, f, command))
  from export import report as report_lib  # pylint: disable=g-import-not-at-top
  print_table(table_rows(figures),
              ["model", "format", "size_MB", "ms_1thr", "ms_2thr", "abs_rel", "delta1",
               f"{report_lib.PARITY_WITHIN_KEY}_of_keras", "scale_vs_keras"])
  for key, per_fmt in figures.items():
    print(key, json.dumps(per_fmt.get("summary", {})))
  print(write_result(args.result_name, figures, command))


if __name__ == "__main__":
  main()
