"""Shared helpers for benchmarks: machine description and result files."""

import datetime
import json
import os
import platform
import sys

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine_info():
  """A dict describing the machine the benchmark ran on."""
  info = {
      "platform": platform.platform(),
      "processor": platform.processor() or platform.machine(),
      "python": platform.python_version(),
      "cpu_count": os.cpu_count(),
  }
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          info["cpu_model"] = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import keras  # pylint: disable=g-import-not-at-top
    info["tensorflow"] = tf.__version__
    info["keras"] = keras.__version__
  except ImportError:
    pass
  return info


def result_path(name):
  """benchmarks/results/<name>.json."""
  return os.path.join(RESULTS_DIR, f"{name}.json")


def merge_variants(figures, result_name, redone, check_only=False):
  """Adds to ``figures["variants"]`` the variants of results/<result_name>.json not in ``redone``.

  ``check_only``: only check the settings (at the start of a run, to fail before training).

  Raises:
    SystemExit: with ``check_only``, the earlier JSON was measured with other settings (size,
      budget, precision...); after training such a JSON is left alone instead (not merged).
  """
  path = result_path(result_name)
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = json.load(f)["figures"]
  differ = [k for k in figures if k not in ("variants", "render_seconds")
            and old.get(k) != figures[k]]
  if differ:
    message = f"--merge: {path} has other settings { {k: old.get(k) for k in differ} }"
    if check_only:
      raise SystemExit(message)
    print(message, "- not merged", flush=True)   # keep this run's results rather than lose them
    return
  if check_only:
    return
  for k, v in old["variants"].items():
    if k not in redone:
      figures["variants"][k] = v


def write_result(name, figures, command=None):
  """Writes benchmarks/results/<name>.json with figures, command, date and machine.

  Args:
    name: benchmark name (file stem).
    figures: JSON-serialisable dict of measured figures.
    command: the command line that produced them (defaults to sys.argv).
  Returns:
    The path written.
  """
  os.makedirs(RESULTS_DIR, exist_ok=True)
  record = {
      "name": name,
      "command": command or " ".join([os.path.basename(sys.executable), "-m",
                                      f"benchmarks.{name}"] + sys.argv[1:]),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "machine": machine_info(),
      "figures": figures,
  }
  path = result_path(name)
  with open(path, "w") as f:
    json.dump(record, f, indent=2, sort_keys=False)
    f.write("\n")
  return path


def print_table(rows, headers):
  """Prints rows (list of sequences) as an aligned text table."""
  cols = [headers] + [[_fmt(c) for c in r] for r in rows]
  widths = [max(len(str(r[i])) for r in cols) for i in range(len(headers))]
  line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths))
  print(line)
  print("  ".join("-" * w for w in widths))
  for r in cols[1:]:
    print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def _fmt(x):
  if isinstance(x, float):
    return f"{x:.4g}"
  return str(x)
