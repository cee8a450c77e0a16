"""Render throughput of the synthetic_world builder (single process, NumPy).

Measures, per scene at its default resolution (street 128x416, indoor 192x256):
  * frames/s of `render_clip` (3 frames + ground truth per clip), wall clock and process CPU time
    (the machine is shared, so CPU time is the more stable figure);
  * the TFDS-encoded size of one clip (zlib of every tensor, as `Tensor(encoding=ZLIB)` stores it);
optionally (`--prepare`) the wall/CPU time and on-disk size of `download_and_prepare` of the default
`street` config.

Run: python -m benchmarks.render_throughput [--clips 8] [--prepare]
"""

import argparse
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from benchmarks import common
from tfds_builders.synthetic_world import clips
from tfds_builders.synthetic_world import scenes

NAME = "render_throughput"


def _encoded_bytes(clip):
  """Bytes of one clip as stored by TFDS (zlib level 6 of each large tensor's raw bytes)."""
  total = 0
  for key, value in clip.items():
    if isinstance(value, np.ndarray):
      raw = value.tobytes()
      total += len(zlib.compress(raw)) if value.size > 64 else len(raw)
    else:
      total += len(str(value))
  return total


def bench_scene(scene, num_clips):
  h, w = scenes.DEFAULT_SIZES[scene]
  clips.render_clip(scene, h, w, index=10_000)  # warm-up (imports, caches)
  wall0, cpu0 = time.perf_counter(), time.process_time()
  sizes = []
  for i in range(num_clips):
    clip = clips.render_clip(scene, h, w, split="benchmark", index=i)
    if i < 3:
      sizes.append(_encoded_bytes(clip))
  wall = time.perf_counter() - wall0
  cpu = time.process_time() - cpu0
  return {
      "scene": scene, "height": h, "width": w, "clips": num_clips,
      "frames_per_s_wall": 3 * num_clips / wall,
      "frames_per_s_cpu": 3 * num_clips / cpu,
      "ms_per_clip_cpu": 1000.0 * cpu / num_clips,
      "encoded_kb_per_clip": float(np.mean(sizes)) / 1024.0,
  }


def bench_prepare():
  """download_and_prepare of the default `street` config into a temporary directory."""
  # pylint: disable=g-import-not-at-top
  from tfds_builders.synthetic_world import synthetic_world_dataset_builder as swb

  tmp = tempfile.mkdtemp(prefix="synthetic_world_bench_")
  try:
    builder = swb.Builder(config="street", data_dir=tmp)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    builder.download_and_prepare()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    n = sum(builder.builder_config.split_sizes.values())
    return {"config": "street", "clips": n, "wall_s": wall, "cpu_s": cpu,
            "disk_mb": size / 2**20, "disk_kb_per_clip": size / 1024.0 / n}
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--clips", type=int, default=8, help="clips rendered per scene")
  parser.add_argument("--prepare", action="store_true",
                      help="also time download_and_prepare of the default street config")
  args = parser.parse_args(argv)
  figures = {"render": [bench_scene(s, args.clips) for s in scenes.SCENES]}
  rows = [[r["scene"], f"{r['height']}x{r['width']}", r["clips"], r["frames_per_s_wall"],
           r["frames_per_s_cpu"], r["ms_per_clip_cpu"], r["encoded_kb_per_clip"]]
          for r in figures["render"]]
  common.print_table(rows, ["scene", "size", "clips", "frames/s (wall)", "frames/s (cpu)",
                            "ms/clip (cpu)", "KB/clip (zlib)"])
  if args.prepare:
    prep = bench_prepare()
    figures["download_and_prepare"] = prep
    print()
    common.print_table([[prep["config"], prep["clips"], prep["wall_s"], prep["cpu_s"],
                         prep["disk_mb"], prep["disk_kb_per_clip"]]],
                       ["config", "clips", "wall s", "cpu s", "disk MB", "KB/clip"])
  path = common.write_result(NAME, figures)
  print(f"\nwrote {path}")


if __name__ == "__main__":
  main()
