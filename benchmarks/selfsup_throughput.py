"""Training throughput of the Monodepth2 trainer: images/s at 192x640, batch 4.

    python -m benchmarks.selfsup_throughput [--steps=3] [--configs=fp32,fp32_xla,bf16,bf16_xla]

One training image = one target frame with its two sources (depth net on 1 frame, pose net on 2
pairs, 4 full-resolution scales). Each configuration builds a fresh ResNet-18 depth + pose model,
runs `WARMUP_STEPS` steps (trace / XLA compile, reported separately) and times `--steps` more on a
fixed in-memory batch (no input-pipeline cost). Reported in wall time (images/s) and in CPU time
(images per CPU-second, all threads), the figure that other jobs on a shared machine do not move.
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
    t, c = time.time(), time.process_time()
    model.fit(ds, steps_per_epoch=WARMUP_STEPS, epochs=1, verbose=0)
    warmup, warmup_cpu = time.time() - t, time.process_time() - c
    t, c = time.time(), time.process_time()
    hist = model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    elapsed, cpu = time.time() - t, time.process_time() - c
  finally:
    keras.mixed_precision.set_global_policy("float32")
  # Wall figures depend on what else runs on the machine; CPU-time figures (all threads of
  # this process) much less so: images per CPU-second is the comparable number across runs.
  return {"images_per_s": BATCH * steps / elapsed, "s_per_step": elapsed / steps,
          "images_per_cpu_s": BATCH * steps / cpu, "cpu_s_per_step": cpu / steps,
          "warmup_s": warmup, "warmup_cpu_s": warmup_cpu,
          "final_loss": float(hist.history["loss"][-1])}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--configs", default=",".join(CONFIGS))
  parser.add_argument("--merge", action="store_true",
                      help="keep the other configs of an existing results JSON")
  args = parser.parse_args()
  figures = {"height": HEIGHT, "width": WIDTH, "batch": BATCH, "steps": args.steps,
             "device": "CPU", "cpu_affinity": sorted(os.sched_getaffinity(0)), "results": {}}
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
    rows.append([name, policy, jit, r["images_per_s"], r["images_per_cpu_s"],
                 r["cpu_s_per_step"], r["warmup_cpu_s"]])
    print(name, r, flush=True)
    common.write_result(NAME, figures)  # incremental: a killed run keeps the finished configs
  common.print_table(rows, ["config", "policy", "jit_compile", "images/s", "images/CPU-s",
                            "CPU-s/step", "warmup CPU-s"])
  print("written", common.write_result(NAME, figures))


if __name__ == "__main__":
  main()
