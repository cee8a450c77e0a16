"""Export formats compared: size on disk and CPU latency (1 and 2 threads), optionally accuracy.

    python -m benchmarks.export_formats                    # FastDepth 224x224 (+ Monodepth2)
    python -m benchmarks.export_formats --models=fastdepth --num_runs=20
    python -m benchmarks.export_formats --experiment=fastdepth_synthetic_street \
        --checkpoint=runs/street/best.weights.h5     # + AbsRel / delta1 on the test split

Without a checkpoint the networks have random weights (FastDepth's head set by
`export._testing.spread_fastdepth` so that depth ~ 5 +- 1 m; Monodepth2-R18 at 192x640 wrapped by
`disp_to_depth`), int8 calibration uses uniform-noise images, and only size and latency are
meaningful. With ``--checkpoint`` the experiment's model is exported with `export.cli`'s path
(calibration on the train split, metrics on the test split) for each format.
Latency: median of ``--num_runs`` single-image runs after warm-up (`export.report`).
"""

import argparse
import os
import sys
import tempfile

import numpy as np

from benchmarks.common import print_table, write_result

NAME = "export_formats"
FORMATS = ("saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8")
# Calibration images without a checkpoint (noise; enough for a representative size/latency).
NUM_RANDOM_CALIBRATION = 8
FASTDEPTH_SIZE = (224, 224)  # Wofk et al. 2019 (FastDepth), NYU Depth v2 input
MONODEPTH2_SIZE = (192, 640)  # Godard et al. 2019 (Monodepth2), KITTI input


def _monodepth2_depth_model():
  import keras  # pylint: disable=g-import-not-at-top
  from tfdepth.geometry.intrinsics import disp_to_depth  # pylint: disable=g-import-not-at-top
  from tfdepth.models import build_monodepth2_depth_net  # pylint: disable=g-import-not-at-top
  net = build_monodepth2_depth_net(MONODEPTH2_SIZE + (3,), num_layers=18, scales=(0,))
  disp = net.output["disp_0"] if isinstance(net.output, dict) else net.outputs[0]
  depth = keras.layers.Lambda(lambda d: disp_to_depth(d)[1], name="to_depth")(disp)
  return keras.Model(net.inputs, {"depth": depth}, name="monodepth2_r18")


def _random_models(names):
  from export._testing import spread_fastdepth  # pylint: disable=g-import-not-at-top
  out = {}
  if "fastdepth" in names:
    out["fastdepth_224"] = spread_fastdepth(FASTDEPTH_SIZE, width_multiplier=1.0)
  if "monodepth2" in names:
    out["monodepth2_r18_192x640"] = _monodepth2_depth_model()
  return out


def run_random(names, formats, num_runs):
  from export import report as report_lib  # pylint: disable=g-import-not-at-top
  from export import tflite  # pylint: disable=g-import-not-at-top
  figures = {}
  for model_name, model in _random_models(names).items():
    h, w = model.inputs[0].shape[1:3]
    rng = np.random.default_rng(0)
    rep = tflite.RepresentativeDataset(
        rng.uniform(size=(NUM_RANDOM_CALIBRATION, h, w, 3)).astype(np.float32))
    figures[model_name] = {"params": int(model.count_params())}
    for fmt in formats:
      with tempfile.TemporaryDirectory() as tmp:
        rep_or_none = rep if fmt == "tflite_int8" else None
        r = report_lib.export_and_report(model, {"experiment": model_name}, fmt, tmp,
                                         representative_dataset=rep_or_none, num_runs=num_runs)
      figures[model_name][fmt] = {"size_bytes": r["size_bytes"], "latency": r["latency"]}
      print(f"{model_name} {fmt}: {r['size_bytes'] / 1e6:.2f} MB, "
            f"{r['latency']['1']['median_ms']:.2f} / {r['latency']['2']['median_ms']:.2f} ms",
            flush=True)
  return figures


def run_checkpoint(experiment, checkpoint, formats, num_runs, num_test, data_dir):
  from export import cli  # pylint: disable=g-import-not-at-top
  figures = {experiment: {}}
  for fmt in formats:
    with tempfile.TemporaryDirectory() as tmp:
      r = cli.export_experiment(experiment, checkpoint, fmt, tmp, data_dir=data_dir,
                                num_test=num_test, num_runs=num_runs)
    figures[experiment][fmt] = {"size_bytes": r["size_bytes"], "latency": r["latency"],
                                "metrics": r["metrics"]}
  return figures


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="fastdepth,monodepth2",
                      help="comma list of fastdepth, monodepth2 (random weights)")
  parser.add_argument("--formats", default=",".join(FORMATS))
  parser.add_argument("--num_runs", type=int, default=20)
  parser.add_argument("--experiment", default="fastdepth_synthetic_street")
  parser.add_argument("--checkpoint", default=None, help="trained weights: adds metrics")
  parser.add_argument("--num_test", type=int, default=64)
  parser.add_argument("--data_dir", default=None)
  args = parser.parse_args(argv)
  formats = [f for f in args.formats.split(",") if f]
  if args.checkpoint:
    figures = run_checkpoint(args.experiment, args.checkpoint, formats, args.num_runs,
                             args.num_test, args.data_dir)
  else:
    figures = run_random([m for m in args.models.split(",") if m], formats, args.num_runs)
  rows = []
  for model_name, per_fmt in figures.items():
    for fmt, f in per_fmt.items():
      if not isinstance(f, dict):
        continue
      m = f.get("metrics", {}).get(fmt, {})
      rows.append([model_name, fmt, f["size_bytes"] / 1e6, f["latency"]["1"]["median_ms"],
                   f["latency"]["2"]["median_ms"], m.get("abs_rel", "-"), m.get("delta1", "-")])
  print_table(rows, ["model", "format", "size_MB", "ms_1thr", "ms_2thr", "abs_rel", "delta1"])
  command = " ".join([os.path.basename(sys.executable), "-m", f"benchmarks.{NAME}"]
                     + list(argv if argv is not None else sys.argv[1:]))
  print(write_result(NAME, figures, command))


if __name__ == "__main__":
  main()
