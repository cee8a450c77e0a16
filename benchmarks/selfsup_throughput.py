"""Training throughput of the Monodepth2 trainer: images/s at 192x640, batch 4.

    python -m benchmarks.selfsup_throughput [--steps=3] [--configs=fp32,fp32_xla,bf16,bf16_xla]

One training image = one target frame with its two sources (depth net on 1 frame, pose net on 2
pairs, 4 full-resolution scales). Each configuration builds a fresh ResNet-18 depth + pose model,
runs `WARMUP_STEPS` steps (trace / XLA compile, reported separately) and times `--steps` more on a
fixed in-memory batch (no input-pipeline cost).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

from benchmarks import common

NAME = "selfsup_throughput"
HEIGHT, WIDTH, BATCH = 192, 640, 4
WARMUP_STEPS = 1
CONFIGS = {
    "fp32": ("float32", False),
    "fp32_xla": ("float32", True),
    "bf16": ("mixed_bfloat16", False),
    "bf16_xla": ("mixed_bfloat16", True),
}


def _batch():
  rng = np.random.default_rng(0)
  frames = rng.random((BATCH, 3, HEIGHT, WIDTH, 3), np.float32)
  k = np.array([[0.58 * WIDTH, 0, 0.5 * WIDTH], [0, 1.92 * HEIGHT, 0.5 * HEIGHT], [0, 0, 1]],
               np.float32)
  return {"frames": frames, "frames_aug": frames, "intrinsics": np.stack([k] * BATCH)}


def measure(policy, jit_compile, steps):
  import keras  # pylint: disable=g-import-not-at-top
  from tfdepth.models import monodepth2  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised as ss  # pylint: disable=g-import-not-at-top
  keras.mixed_precision.set_global_policy(policy)
  keras.utils.set_random_seed(0)
  try:
    shape = (HEIGHT, WIDTH, 3)
    model = ss.SelfSupervisedDepthModel(monodepth2.build_monodepth2_depth_net(shape),
                                        monodepth2.build_monodepth2_pose_net(shape))
    model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit_compile)
    ds = tf.data.Dataset.from_tensors(_batch()).repeat()
    t = time.time()
    model.fit(ds, steps_per_epoch=WARMUP_STEPS, epochs=1, verbose=0)
    warmup = time.time() - t
    t = time.time()
    hist = model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    elapsed = time.time() - t
  finally:
    keras.mixed_precision.set_global_policy("float32")
  return {"images_per_s": BATCH * steps / elapsed, "s_per_step": elapsed / steps,
          "warmup_s": warmup, "final_loss": float(hist.history["loss"][-1])}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--configs", default=",".join(CONFIGS))
  parser.add_argument("--merge", action="store_true",
                      help="keep the other configs of an existing results JSON")
  args = parser.parse_args()
  figures = {"height": HEIGHT, "width": WIDTH, "batch": BATCH, "steps": args.steps,
             "device": "CPU", "results": {}}
  path = os.path.join(common.RESULTS_DIR, f"{NAME}.json")
  if args.merge and os.path.exists(path):
    with open(path) as f:
      figures["results"] = json.load(f)["figures"]["results"]
  command = " ".join(["python -m benchmarks.selfsup_throughput"] + sys.argv[1:])
  rows = []
  for name in args.configs.split(","):
    policy, jit = CONFIGS[name]
    r = measure(policy, jit, args.steps)
    r["command"] = command
    figures["results"][name] = r
    rows.append([name, policy, jit, r["images_per_s"], r["s_per_step"], r["warmup_s"]])
    print(name, r, flush=True)
    common.write_result(NAME, figures)  # incremental: a killed run keeps the finished configs
  common.print_table(rows, ["config", "policy", "jit_compile", "images/s", "s/step", "warmup s"])
  print("written", common.write_result(NAME, figures))


if __name__ == "__main__":
  main()
