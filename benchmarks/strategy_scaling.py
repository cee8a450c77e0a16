"""Strategy scaling: MirroredStrategy over 1 vs 2 logical CPU devices, and
MultiWorkerMirroredStrategy with 2 localhost processes vs a single process.

    python -m benchmarks.strategy_scaling [--steps=10 --warmup=3 --batch=8 --size=64]

Workload: FastDepth (Wofk et al., ICRA 2019), width multiplier 0.25, 64x64 inputs, trained by
`trainers.supervised.SupervisedDepthModel` (L1 loss, SGD) on random in-memory batches of a fixed
global batch size. Reports training images/s (global batch x timed steps / wall time of the
timed steps, after warm-up steps that absorb tracing).

Caveat, stated with the figures: the reference machine has 2 CPU cores shared with other jobs,
so "2 devices" / "2 workers" cannot be faster than 1; the numbers measure the *overhead* of the
strategies (replica splitting, all-reduce, gRPC collectives), not speed-up. On a real multi-GPU /
multi-host cluster each replica has its own accelerator.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# Workload defaults (kept tiny so the benchmark finishes in ~2 minutes on 2 shared cores).
DEFAULT_STEPS = 20
DEFAULT_WARMUP = 3
DEFAULT_BATCH = 8
DEFAULT_SIZE = 64
WIDTH_MULTIPLIER = 0.25
NUM_LOGICAL_CPUS = 2
WORKER_TIMEOUT_S = 480
LOCALHOST = "127.0.0.1"


def _configure_cpus(n):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


class _StepTimer:
  """Keras callback timing the train batches after `warmup` of them."""

  def __init__(self, warmup):
    import keras  # pylint: disable=g-import-not-at-top

    class _Timer(keras.callbacks.Callback):

      def __init__(self):
        super().__init__()
        self.times = []

      def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())

    self.callback = _Timer()
    self.warmup = warmup

  def median_step_seconds(self):
    """Median wall time of the timed steps (robust to spikes from other jobs on the machine)."""
    t = self.callback.times[self.warmup - 1:]
    return statistics.median(b - a for a, b in zip(t[:-1], t[1:]))


def images_per_second(strategy, steps, warmup, batch, size):
  """Trains `warmup + steps` steps under `strategy`; returns global batch / median step time."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfdepth import models  # pylint: disable=g-import-not-at-top
  from trainers import supervised  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  n = batch * 4
  images = rng.uniform(size=(n, size, size, 3)).astype(np.float32)
  depth = rng.uniform(1.0, 10.0, size=(n, size, size, 1)).astype(np.float32)
  ds = tf.data.Dataset.from_tensor_slices({"image": images, "depth": depth}).repeat().batch(
      batch, drop_remainder=True)
  with strategy.scope():
    net = models.build_fastdepth(input_shape=(size, size, 3), width_multiplier=WIDTH_MULTIPLIER)
    model = supervised.SupervisedDepthModel(net, [("l1", 1.0)])
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    model(tf.zeros([1, size, size, 3]))
  timer = _StepTimer(warmup)
  model.fit(ds, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[timer.callback])
  return batch / timer.median_step_seconds()


def _free_ports(n):
  import socket  # pylint: disable=g-import-not-at-top
  socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
  for s in socks:
    s.bind((LOCALHOST, 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def _child(role, args, out_path, tf_config=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("TF_CONFIG", None)
  if tf_config:
    env["TF_CONFIG"] = json.dumps(tf_config)
  cmd = [sys.executable, "-m", "benchmarks.strategy_scaling", f"--role={role}",
         f"--out={out_path}", f"--steps={args.steps}", f"--warmup={args.warmup}",
         f"--batch={args.batch}", f"--size={args.size}"]
  return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          start_new_session=True)


def _wait(children):
  try:
    for c in children:
      _, err = c.communicate(timeout=WORKER_TIMEOUT_S)
      if c.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({c.returncode}): {err.decode()[-2000:]}")
  finally:
    for c in children:
      if c.poll() is None:
        c.kill()
        c.wait()


def run_child(args):
  """--role=mirrored1|mirrored2|single|worker: measures one configuration, writes JSON."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if args.role.startswith("mirrored"):
    _configure_cpus(NUM_LOGICAL_CPUS)
    n = int(args.role[-1])
    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:n]]
    strategy = tf.distribute.MirroredStrategy(devices)
  elif args.role == "worker":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  else:
    strategy = tf.distribute.get_strategy()
  ips = images_per_second(strategy, args.steps, args.warmup, args.batch, args.size)
  with open(args.out, "w") as f:
    json.dump({"images_per_s": ips, "replicas": strategy.num_replicas_in_sync}, f)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
  parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
  parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
  parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
  parser.add_argument("--role", default="driver", help=argparse.SUPPRESS)
  parser.add_argument("--out", default="", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.role != "driver":
    return run_child(args)

  tmp = tempfile.mkdtemp(prefix="strategy_scaling_")
  results = {}
  # Each configuration runs in a fresh process, one after the other (no contention between them).
  for role in ("single", "mirrored1", "mirrored2"):
    out = os.path.join(tmp, f"{role}.json")
    _wait([_child(role, args, out)])
    with open(out) as f:
      results[role] = json.load(f)
  ports = _free_ports(2)
  cluster = {"worker": [f"{LOCALHOST}:{p}" for p in ports]}
  outs = [os.path.join(tmp, f"worker{i}.json") for i in range(2)]
  _wait([_child("worker", args, outs[i], {"cluster": cluster,
                                          "task": {"type": "worker", "index": i}})
         for i in range(2)])
  with open(outs[0]) as f:
    results["multi_worker"] = json.load(f)

  rows = [("default strategy, 1 process", "single"),
          ("MirroredStrategy, 1 logical CPU", "mirrored1"),
          ("MirroredStrategy, 2 logical CPUs", "mirrored2"),
          ("MultiWorkerMirrored, 2 localhost processes", "multi_worker")]
  base = results["single"]["images_per_s"]
  print(f"FastDepth x{WIDTH_MULTIPLIER} {args.size}x{args.size}, global batch {args.batch}, "
        f"median of {args.steps} timed steps after {args.warmup} warm-up (2 shared CPU cores)")
  print("| configuration | replicas | images/s | relative to default strategy |")
  print("|---|---|---|---|")
  figures = {"model": f"fastdepth width_multiplier={WIDTH_MULTIPLIER}",
             "input": [args.size, args.size], "global_batch": args.batch,
             "timed_steps": args.steps, "warmup_steps": args.warmup,
             "note": "2 CPU cores shared with other jobs: figures measure strategy overhead, "
                     "not speed-up", "rows": {}}
  for label, key in rows:
    r = results[key]
    rel = r["images_per_s"] / base
    print(f"| {label} | {r['replicas']} | {r['images_per_s']:.1f} | {rel:.2f} |")
    figures["rows"][key] = {"label": label, "replicas": r["replicas"],
                            "images_per_s": round(r["images_per_s"], 2),
                            "relative_to_default_strategy": round(rel, 3)}
  # Step-time ratio, 2 localhost workers vs 1 process at the same global batch.
  figures["multi_worker_step_time_ratio"] = round(
      base / results["multi_worker"]["images_per_s"], 3)
  figures["mirrored_2_vs_1_step_time_ratio"] = round(
      results["mirrored1"]["images_per_s"] / results["mirrored2"]["images_per_s"], 3)
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  common.write_result("strategy_scaling", figures)
  return 0


if __name__ == "__main__":
  sys.exit(main())
