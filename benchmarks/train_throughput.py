"""Training throughput (images/s) of SupervisedDepthModel on CPU.

    python -m benchmarks.train_throughput [--models=fastdepth] [--size=224x224] [--steps=10]

For each model and each (jit_compile, mixed precision) variant: builds the experiment's trainer on
in-memory random data (no input pipeline cost), runs `warmup` steps (tracing / XLA compilation
excluded), then times `steps` steps of `model.fit`. Prints a table and writes
benchmarks/results/train_throughput.json.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import common as bench_common
from trainers import common
from trainers import experiments

# Model -> registered experiment whose loss terms / metrics / optimizer are used.
MODEL_EXPERIMENTS = {"fastdepth": "fastdepth_synthetic_street"}
VARIANTS = (("float32", False), ("float32", True), ("mixed_bfloat16", False),
            ("mixed_bfloat16", True))


def measure(experiment, height, width, batch_size, steps, warmup, policy, jit,
            width_multiplier=None, train_metrics=True):
  """Returns images/s of `steps` timed training steps (after `warmup` steps)."""
  overrides = [f"data.height={height}", f"data.width={width}", f"train.batch_size={batch_size}",
               f"train.mixed_precision={policy}", f"train.jit_compile={jit}"]
  if width_multiplier is not None:
    overrides.append(f"model.kwargs.width_multiplier={width_multiplier}")
  config = experiments.apply_overrides(experiments.get_experiment(experiment), overrides)
  model = common.build_trainer(config, total_steps=steps + warmup)
  if not train_metrics:
    model.depth_metrics = []
  rng = np.random.default_rng(0)
  batch = {"image": rng.uniform(0, 1, (batch_size, height, width, 3)).astype(np.float32),
           "depth": rng.uniform(1, 60, (batch_size, height, width, 1)).astype(np.float32)}
  ds = tf.data.Dataset.from_tensors(batch).repeat()
  model.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0)
  start = time.perf_counter()
  model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
  elapsed = time.perf_counter() - start
  keras.mixed_precision.set_global_policy("float32")
  return steps * batch_size / elapsed


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--models", default="fastdepth")
  parser.add_argument("--size", default="224x224")
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--width_multiplier", type=float, default=1.0)
  parser.add_argument("--no_train_metrics", action="store_true")
  args = parser.parse_args()
  height, width = (int(v) for v in args.size.split("x"))
  rows, figures = [], {}
  for name in args.models.split(","):
    for policy, jit in VARIANTS:
      ips = measure(MODEL_EXPERIMENTS[name], height, width, args.batch_size, args.steps,
                    args.warmup, policy, jit, args.width_multiplier, not args.no_train_metrics)
      key = f"{name}_{policy}_{'xla' if jit else 'graph'}"
      figures[key] = {"images_per_s": ips, "model": name, "policy": policy, "jit_compile": jit,
                      "size": [height, width], "batch_size": args.batch_size,
                      "width_multiplier": args.width_multiplier,
                      "train_metrics": not args.no_train_metrics}
      rows.append([name, policy, jit, ips])
      print(f"{key}: {ips:.2f} images/s", flush=True)
  bench_common.print_table(rows, ["model", "policy", "jit_compile", "images/s"])
  bench_common.write_result("train_throughput", figures)


if __name__ == "__main__":
  main()
