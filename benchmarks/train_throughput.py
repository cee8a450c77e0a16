"""Training throughput (images/s) of the supervised model zoo under `SupervisedDepthModel.fit`.

    python -m benchmarks.train_throughput [--models=fastdepth,fcrn,...] [--variants=fp32,bf16_xla]
        [--batch_size=2] [--steps=3] [--warmup=1] [--timeout=600]
    python -m benchmarks.train_throughput --markdown     # README table from the JSON only

For every model at its standard resolution (`MODELS`) and every numerics variant
(float32, float32 + `jit_compile`, `mixed_bfloat16`, `mixed_bfloat16` + `jit_compile`), a fresh
subprocess builds the model's registered experiment trainer (its loss terms, streaming metrics
and optimizer; `trainers.common.build_trainer`) on one in-memory random batch (no input-pipeline
cost), runs `--warmup` steps (tracing / XLA compilation, timed separately as `warmup_s`), then
times `--steps` more steps of `model.fit`. A (model, variant) that does not finish within
`--timeout` seconds is recorded as `"timeout"`, one that fails as `"error"` with the message's
last line; neither stops the table.

Standard resolutions (multiples of 32): FastDepth 224x224 (Wofk et al. 2019, NYU), FCRN 224x320
(Laina et al. 2016: 228x304), Eigen 2014 224x288 (Eigen et al. 2014: 228x304), Eigen 2015
(depth task) 224x320 (Eigen & Fergus 2015: 240x320), DORN and the SID classifier 384x512 (Fu et
al. 2018 KITTI crops 385x513), DPT 384x384 (Ranftl et al. 2021), Monodepth2's depth net 192x640
(Godard et al. 2019; trained supervised through `disp_to_depth`, see
`benchmarks.supervised_learning`). Every model is at its published width (FastDepth at width 1.0,
DPT at ViT-Base/16, DORN / SID on ResNet-101, Eigen with FC 4096).

Throughput is images per second of the worker's process CPU time (`images_per_cpu_s`, all
threads): with the run pinned to one core (`taskset -c 0`) that is the one-core training
throughput, independent of other jobs on a shared machine; wall-clock `images_per_s` is
recorded too. Timeouts are wall-clock.

Writes benchmarks/results/train_throughput.json after every measurement (`--merge` keeps
measurements of an earlier JSON that this run does not redo) and prints a table.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import common as bench_common

NAME = "train_throughput"
# Model -> (registered experiment, (height, width), extra overrides). Monodepth2 borrows the
# loss / metric settings of `fastdepth_synthetic_street` and replaces the network (see
# `benchmarks.supervised_learning.NETWORK_FACTORIES`).
MODELS = {
    "fastdepth": ("fastdepth_synthetic_street", (224, 224), ["model.kwargs.width_multiplier=1.0"]),
    "fcrn": ("fcrn_nyu", (224, 320), []),
    "eigen2014": ("eigen2014_nyu", (224, 288), []),
    "eigen2015": ("eigen2015_nyu", (224, 320), []),
    "dorn": ("dorn_kitti", (384, 512), []),
    "sid": ("sid_deeplab_kitti", (384, 512), []),
    "dpt": ("dpt_nyu", (384, 384), []),
    "monodepth2": ("fastdepth_synthetic_street", (192, 640), []),
}
VARIANTS = {
    "fp32": ("float32", False),
    "fp32_xla": ("float32", True),
    "bf16": ("mixed_bfloat16", False),
    "bf16_xla": ("mixed_bfloat16", True),
}
DEFAULT_BATCH_SIZE = 2
DEFAULT_STEPS = 3
DEFAULT_WARMUP = 1
DEFAULT_TIMEOUT_S = 600
# Random ground truth range (metres): inside every model's depth range (KITTI-style 80 m cap).
RANDOM_DEPTH_RANGE = (1.0, 60.0)
# Marker of the worker's result line on stdout.
RESULT_PREFIX = "TRAIN_THROUGHPUT_RESULT "


def worker_config(model, policy, jit_compile, batch_size):
  """The experiment config of `model` at its standard size with the variant's numerics."""
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  experiment, (height, width), extra = MODELS[model]
  overrides = [f"data.height={height}", f"data.width={width}", f"train.batch_size={batch_size}",
               f"train.mixed_precision={policy}", f"train.jit_compile={jit_compile}"] + extra
  return experiments.apply_overrides(experiments.get_experiment(experiment), overrides)


def measure(model, policy, jit_compile, batch_size, steps, warmup):
  """Runs in the worker process: `{"images_per_s", "s_per_step", "warmup_s", ...}`."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from benchmarks import supervised_learning  # pylint: disable=g-import-not-at-top
  config = worker_config(model, policy, jit_compile, batch_size)
  trainer = supervised_learning.build_trainer(
      config, total_steps=steps + warmup,
      network_fn=supervised_learning.NETWORK_FACTORIES.get(model))
  h, w = config.data.height, config.data.width
  rng = np.random.default_rng(0)
  batch = {"image": rng.uniform(0, 1, (batch_size, h, w, 3)).astype(np.float32),
           "depth": rng.uniform(*RANDOM_DEPTH_RANGE, (batch_size, h, w, 1)).astype(np.float32)}
  ds = tf.data.Dataset.from_tensors(batch).repeat()
  try:
    t = time.perf_counter()
    trainer.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0)
    warmup_s = time.perf_counter() - t
    t, cpu = time.perf_counter(), time.process_time()
    history = trainer.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    elapsed, cpu_elapsed = time.perf_counter() - t, time.process_time() - cpu
  finally:
    keras.mixed_precision.set_global_policy("float32")
  # Images per second of process CPU time (all threads): with the process pinned to one core
  # (`taskset -c 0`) this is the one-core throughput, whatever else shares the machine.
  return {"images_per_s": steps * batch_size / elapsed, "s_per_step": elapsed / steps,
          "images_per_cpu_s": steps * batch_size / cpu_elapsed,
          "warmup_s": warmup_s, "final_loss": float(history.history["loss"][-1]),
          "params": int(trainer.network.count_params())}


def run_in_subprocess(model, variant, batch_size, steps, warmup, timeout_s):
  """Measures one (model, variant) in a fresh Python process; "timeout" / "error" records."""
  cmd = [sys.executable, "-m", "benchmarks.train_throughput", "--worker", f"--models={model}",
         f"--variants={variant}", f"--batch_size={batch_size}", f"--steps={steps}",
         f"--warmup={warmup}"]
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  t = time.time()
  try:
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout_s,
                          check=False)
  except subprocess.TimeoutExpired:
    return {"status": "timeout", "timeout_s": timeout_s, "wall_s": round(time.time() - t, 1)}
  for line in proc.stdout.splitlines():
    if line.startswith(RESULT_PREFIX):
      return {"status": "ok", **json.loads(line[len(RESULT_PREFIX):]),
              "wall_s": round(time.time() - t, 1)}
  tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
  return {"status": "error", "returncode": proc.returncode, "message": tail[-500:],
          "wall_s": round(time.time() - t, 1)}


def result_path(name=NAME):
  return os.path.join(bench_common.RESULTS_DIR, f"{name}.json")


def _cell(result):
  if result is None:
    return "-"
  if result.get("status") == "ok":
    return f"{result.get('images_per_cpu_s', result['images_per_s']):.2f}"
  return result.get("status", "?")


def markdown(record):
  """README Markdown table (images/s per model x variant) of a `train_throughput.json` record."""
  figures = record["figures"] if "figures" in record else record
  results = figures.get("results", {})
  header = "| model | size | params | " + " | ".join(
      f"{VARIANTS[v][0]}{' + XLA' if VARIANTS[v][1] else ''}" for v in VARIANTS) + " |"
  lines = [header, "|---" * (3 + len(VARIANTS)) + "|"]
  for model in MODELS:
    per_variant = results.get(model, {})
    if not per_variant:
      continue
    h, w = MODELS[model][1]
    params = next((r["params"] for r in per_variant.values()
                   if r and r.get("status") == "ok"), None)
    params_cell = f"{params / 1e6:.1f} M" if params else "-"
    lines.append(f"| {model} | {h}x{w} | {params_cell} | "
                 + " | ".join(_cell(per_variant.get(v)) for v in VARIANTS) + " |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default=",".join(MODELS),
                      help=f"comma-separated subset of {list(MODELS)}")
  parser.add_argument("--variants", default=",".join(VARIANTS),
                      help=f"comma-separated subset of {list(VARIANTS)}")
  parser.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE)
  parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="timed steps")
  parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP,
                      help="untimed steps first (tracing / XLA compilation)")
  parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                      help="seconds per (model, variant) subprocess before it counts as timeout")
  parser.add_argument("--result_name", default=NAME,
                      help="results JSON stem (e.g. one per process when cells run in parallel)")
  parser.add_argument("--merge", action="store_true",
                      help="keep the measurements of an existing JSON that this run does not redo")
  parser.add_argument("--markdown", action="store_true",
                      help="print the README table of the results JSON and exit")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.markdown:
    with open(result_path()) as f:
      print(markdown(json.load(f)))
    return
  models = [m for m in args.models.split(",") if m]
  variants = [v for v in args.variants.split(",") if v]
  unknown = sorted(set(models) - set(MODELS)) + sorted(set(variants) - set(VARIANTS))
  if unknown:
    parser.error(f"unknown models/variants {unknown}; expected models from {list(MODELS)} and "
                 f"variants from {list(VARIANTS)}")
  for value, flag in ((args.batch_size, "--batch_size"), (args.steps, "--steps"),
                      (args.warmup, "--warmup")):
    if value < 1:
      parser.error(f"{flag} must be a positive integer, received {value}")
  if args.worker:   # one measurement, printed as a JSON line for the parent process
    policy, jit = VARIANTS[variants[0]]
    result = measure(models[0], policy, jit, args.batch_size, args.steps, args.warmup)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return
  # Top-level settings are this run's; each result cell records its own (see below).
  figures = {"batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
             "timeout_s": args.timeout, "device": "CPU",
             "sizes": {m: list(MODELS[m][1]) for m in MODELS},
             "experiments": {m: MODELS[m][0] for m in MODELS}, "results": {}}
  if args.merge and os.path.exists(result_path(args.result_name)):
    with open(result_path(args.result_name)) as f:
      figures["results"] = json.load(f)["figures"].get("results", {})
  command = " ".join(["python -m benchmarks.train_throughput"] + sys.argv[1:])
  rows = []
  for model in models:
    for variant in variants:
      result = run_in_subprocess(model, variant, args.batch_size, args.steps, args.warmup,
                                 args.timeout)
      # Per cell: the settings it was measured with (--merge mixes runs with other settings).
      result.update({"steps": args.steps, "batch_size": args.batch_size,
                     "timeout_s": args.timeout, "command": command})
      figures["results"].setdefault(model, {})[variant] = result
      print(f"{model} {variant}: {json.dumps(result)}", flush=True)
      bench_common.write_result(args.result_name, figures, command)   # incremental
      rows.append([model, variant, _cell(result), result.get("s_per_step", "-"),
                   result.get("warmup_s", "-")])
  bench_common.print_table(rows, ["model", "variant", "images/CPU-s", "s/step", "warmup s"])
  print("written", bench_common.write_result(args.result_name, figures, command))


if __name__ == "__main__":
  main()
