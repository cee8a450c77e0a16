"""Subprocess helpers of the multi-process tests: free localhost ports, bounded runs, cleanup."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCALHOST = "127.0.0.1"


def free_ports(n):
  """`n` distinct TCP ports on 127.0.0.1 that were free when probed (kernel-assigned)."""
  socks, ports = [], []
  try:
    for _ in range(n):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind((LOCALHOST, 0))
      socks.append(s)
      ports.append(s.getsockname()[1])
  finally:
    for s in socks:
      s.close()
  return ports


def tf_config(ports, index):
  """TF_CONFIG JSON of worker `index` of a localhost cluster (TensorFlow's documented format)."""
  return json.dumps({"cluster": {"worker": [f"{LOCALHOST}:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}})


def train_command(flags):
  return [sys.executable, "-m", "tests._workers.train_cli"] + list(flags)


def spawn(args, env_updates, log_path):
  env = dict(os.environ)
  env.pop("TF_CONFIG", None)
  env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow",
              "PYTHONPATH": REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")})
  env.update(env_updates)
  log = open(log_path, "w")  # pylint: disable=consider-using-with
  proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True)
  proc.log_path = log_path
  proc.log_file = log
  return proc


def kill(proc):
  """SIGKILLs `proc`'s process group (it was started in its own session) and reaps it."""
  if proc.poll() is None:
    with contextlib.suppress(ProcessLookupError):
      os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()
  proc.log_file.close()


def tail(proc, n=3000):
  with open(proc.log_path) as f:
    return f.read()[-n:]


@contextlib.contextmanager
def running(procs):
  """Yields `procs`; kills every one still alive on exit (success, failure or timeout)."""
  try:
    yield procs
  finally:
    for p in procs:
      kill(p)


def wait_all(procs, timeout):
  """Waits for every process (timeout seconds in all); returns their exit codes."""
  deadline = time.monotonic() + timeout
  codes = []
  for p in procs:
    try:
      codes.append(p.wait(timeout=max(0.1, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
      codes.append(None)
  return codes


def read_h5(path):
  """`{dataset path: numpy array}` of every dataset in a Keras `.weights.h5` file."""
  out = {}
  with h5py.File(path, "r") as f:
    f.visititems(lambda name, obj: out.__setitem__(name, np.asarray(obj))
                 if isinstance(obj, h5py.Dataset) else None)
  return out
