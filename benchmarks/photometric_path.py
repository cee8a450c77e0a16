"""Per-call time of Monodepth2's photometric + reprojection path.

One call = warp two source frames into the target view with depth / pose / K
(`tfdepth.geometry.warp_image`), the photometric error of each warp and of each unwarped source
(`photometric_error`), auto-masking with the minimum over all four (`automask`), and the mean of
the masked minimum. Measured at 192×640, batch 4 (Monodepth2's KITTI training size), as a
`tf.function` graph and with `jit_compile=True`, forward only and forward + backward (gradient
w.r.t. depth and pose translation).

    python -m benchmarks.photometric_path [--iterations 20] [--warmup 3]

Prints a table and writes benchmarks/results/photometric_path.json.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402
from tfdepth import geometry  # noqa: E402
from tfdepth import losses  # noqa: E402

NAME = "photometric_path"
# Monodepth2's KITTI training resolution and batch size (Godard et al. 2019, Sec. 4.1: 640×192;
# `options.py` --batch_size 12 on a GPU; 4 keeps this CPU benchmark short).
HEIGHT, WIDTH, BATCH = 192, 640, 4
NUM_SOURCES = 2  # frames −1 and +1


def make_inputs(seed=0):
  """Deterministic synthetic inputs: images in [0, 1], depth 1–80 m, small motions, KITTI K."""
  rng = np.random.default_rng(seed)
  target = rng.uniform(size=(BATCH, HEIGHT, WIDTH, 3)).astype(np.float32)
  sources = rng.uniform(size=(NUM_SOURCES, BATCH, HEIGHT, WIDTH, 3)).astype(np.float32)
  depth = rng.uniform(1.0, 80.0, (BATCH, HEIGHT, WIDTH, 1)).astype(np.float32)
  axis_angle = rng.normal(0.0, 0.01, (NUM_SOURCES, BATCH, 3)).astype(np.float32)
  translation = rng.normal(0.0, 0.5, (NUM_SOURCES, BATCH, 3)).astype(np.float32)
  kn = np.asarray(geometry.KITTI_NORMALIZED_INTRINSICS, np.float32)
  k = kn * np.array([[WIDTH], [HEIGHT], [1.0]], np.float32)
  intrinsics = np.tile(k[None, :3, :3], (BATCH, 1, 1))
  return tuple(tf.constant(a) for a in (target, sources, depth, axis_angle, translation, intrinsics))


def photometric_loss(target, sources, depth, axis_angle, translation, intrinsics):
  """Scalar loss of the whole path (see module docstring)."""
  reprojection, identity = [], []
  for i in range(NUM_SOURCES):
    source_from_target = geometry.pose_from_axis_angle_translation(axis_angle[i], translation[i])
    warped, _ = geometry.warp_image(sources[i], depth, source_from_target, intrinsics)
    reprojection.append(losses.photometric_error(warped, target))
    identity.append(losses.photometric_error(sources[i], target))
  min_error, mask = losses.automask(reprojection, identity, seed=0)
  return tf.reduce_mean(min_error), tf.reduce_mean(mask)


def make_step(jit, backward):
  spec = [tf.TensorSpec([BATCH, HEIGHT, WIDTH, 3]),
          tf.TensorSpec([NUM_SOURCES, BATCH, HEIGHT, WIDTH, 3]),
          tf.TensorSpec([BATCH, HEIGHT, WIDTH, 1]), tf.TensorSpec([NUM_SOURCES, BATCH, 3]),
          tf.TensorSpec([NUM_SOURCES, BATCH, 3]), tf.TensorSpec([BATCH, 3, 3])]

  def forward(*args):
    return photometric_loss(*args)[0]

  def forward_backward(target, sources, depth, axis_angle, translation, intrinsics):
    with tf.GradientTape() as tape:
      tape.watch([depth, translation])
      loss = photometric_loss(target, sources, depth, axis_angle, translation, intrinsics)[0]
    grad_depth, grad_translation = tape.gradient(loss, [depth, translation])
    return loss + 0.0 * (tf.reduce_sum(grad_depth) + tf.reduce_sum(grad_translation))

  return tf.function(forward_backward if backward else forward, input_signature=spec,
                     jit_compile=jit)


def time_step(step, inputs, iterations, warmup):
  """Per-call wall times in ms (each call synchronised by reading the result back)."""
  t0 = time.perf_counter()
  step(*inputs).numpy()  # trace + compile
  first_ms = (time.perf_counter() - t0) * 1e3
  for _ in range(warmup):
    step(*inputs).numpy()
  times = []
  for _ in range(iterations):
    t0 = time.perf_counter()
    step(*inputs).numpy()
    times.append((time.perf_counter() - t0) * 1e3)
  return first_ms, times


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--iterations", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  args = parser.parse_args(argv)
  inputs = make_inputs()
  loss, kept = (float(v) for v in photometric_loss(*inputs))
  rows, figures = [], {"height": HEIGHT, "width": WIDTH, "batch": BATCH,
                       "num_sources": NUM_SOURCES, "iterations": args.iterations,
                       "warmup": args.warmup, "device": "CPU", "loss": loss,
                       "automask_kept_fraction": kept, "results": []}
  for jit in (False, True):
    for backward in (False, True):
      first_ms, times = time_step(make_step(jit, backward), inputs, args.iterations, args.warmup)
      mode = "jit_compile" if jit else "tf.function"
      direction = "forward+backward" if backward else "forward"
      median = statistics.median(times)
      rows.append([mode, direction, median, statistics.mean(times), min(times), max(times), first_ms])
      figures["results"].append({"mode": mode, "pass": direction, "median_ms": median,
                                 "mean_ms": statistics.mean(times), "min_ms": min(times),
                                 "max_ms": max(times), "first_call_ms": first_ms})
  common.print_table(rows, ["mode", "pass", "median ms", "mean ms", "min ms", "max ms",
                            "first call ms"])
  path = common.write_result(NAME, figures)
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
