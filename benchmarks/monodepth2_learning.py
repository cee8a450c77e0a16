"""Monodepth2 (and the segmentation-guided variant) trained from scratch on the synthetic street.

    python -m benchmarks.monodepth2_learning [--minutes=12] [--variants=monodepth2,segdepth] \
        [--precision=mixed_bfloat16] [--merge]

Each variant trains for a fixed CPU-time budget (ResNet-18 depth + pose nets, random
init, 64x192, batch 8, Adam; clips at the video experiments' 30 Hz-like frame interval), evaluating the median-scaled test AbsRel (protocol
`synthetic_street` + per-image median scaling, `tfdepth.metrics.evaluate_predictions`) after every
chunk of steps (the learning curve). Reported beside it: the median-depth baseline (a constant
prediction, which median scaling turns into the per-image GT median), AbsRel on the boundary
region (pixels within `BOUNDARY_RADIUS_PX` of a semantic label change), the 3-frame pose ATE and
`pred_rel_std` (mean over test images of std / mean of the predicted depth: 0 for the constant
depth of a saturated sigmoid, the failure this benchmark once showed; the ground truth's is
`gt_rel_std` in the figures).
"""

import argparse
import sys
import time

import numpy as np
import scipy.ndimage

from benchmarks import common

NAME = "monodepth2_learning"
HEIGHT, WIDTH = 64, 192
NUM_TRAIN, NUM_TEST = 400, 50
BATCH_SIZE = 8
# From scratch (no ImageNet) with a few hundred steps: 2x Monodepth2's 1e-4 (tfdepth choice).
LEARNING_RATE = 2e-4
CHUNK_STEPS = 50
BOUNDARY_RADIUS_PX = 2
DEFAULT_MINUTES = 12.0
# 5-frame test sequences around the first test clips' frame t (rendered once, on first use) for
# the literature's ATE over 5-frame snippets (`trainers.self_supervised.pose_snippets_ate`).
_POSE_SEQUENCES = []


def render(split, n, frame_interval=None):
  """Clips of the synthetic street at the video experiments' frame interval (30 Hz-like)."""
  from tfds_builders.synthetic_world import clips  # pylint: disable=g-import-not-at-top
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  fi = experiments.SYNTHETIC_VIDEO_FRAME_INTERVAL if frame_interval is None else frame_interval
  return [clips.render_clip("street", HEIGHT, WIDTH, seed=0, split=split, index=i,
                            frame_interval=fi) for i in range(n)]


def boundary_mask(semantic):
  """(N, H, W, 1) label ids -> (N, H, W) bool, within BOUNDARY_RADIUS_PX of a label change."""
  s = semantic[..., 0]
  edge = np.zeros_like(s, bool)
  edge[:, :, 1:] |= s[:, :, 1:] != s[:, :, :-1]
  edge[:, :, :-1] |= s[:, :, 1:] != s[:, :, :-1]
  edge[:, 1:] |= s[:, 1:] != s[:, :-1]
  edge[:, :-1] |= s[:, 1:] != s[:, :-1]
  struct = np.ones((1, 2 * BOUNDARY_RADIUS_PX - 1, 2 * BOUNDARY_RADIUS_PX - 1), bool)
  return scipy.ndimage.binary_dilation(edge, struct)


def region_abs_rel(gt, pred, region, protocol):
  """Median-scaled AbsRel (scale from all valid pixels) restricted to `region`, mean over images."""
  vals = []
  for g, p, r in zip(gt[..., 0], pred[..., 0], region):
    valid = (g > protocol.min_depth) & (g < protocol.max_depth)
    if not valid.any():
      continue
    scaled = np.clip(p * np.median(g[valid]) / np.median(p[valid]), protocol.min_depth,
                     protocol.max_depth)
    sel = valid & r
    if sel.any():
      vals.append(np.mean(np.abs(scaled[sel] - g[sel]) / g[sel]))
  return float(np.mean(vals))


def evaluate(model, test_ds, protocol):
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised as ss  # pylint: disable=g-import-not-at-top
  res = ss.predict_split(model, test_ds)
  if not _POSE_SEQUENCES:
    from trainers import experiments  # pylint: disable=g-import-not-at-top
    _POSE_SEQUENCES.extend(ss.render_pose_sequences(
        "street", HEIGHT, WIDTH, seed=0, split="test", num_sequences=ss.POSE_EVAL_NUM_SEQUENCES,
        frame_interval=experiments.SYNTHETIC_VIDEO_FRAME_INTERVAL))
  ate5 = ss.pose_snippets_ate(model, _POSE_SEQUENCES)
  table, _ = metrics.evaluate_predictions(list(res["gt"][..., 0]), list(res["pred"][..., 0]),
                                          protocol)
  return {"abs_rel": float(table["abs_rel"]), "delta1": float(table["delta1"]),
          "rmse": float(table["rmse"]),
          "boundary_abs_rel": region_abs_rel(res["gt"], res["pred"], boundary_mask(res["semantic"]),
                                             protocol),
          "ate_3frame": float(res["ate"].mean()),
          "ate_5frame": float(ate5["mean"]),
          "pred_rel_std": rel_std(res["pred"], res["gt"])}


def rel_std(depth, gt):
  """Mean over images of std / mean of `depth` (N, H, W, 1) on the pixels where `gt` > 0."""
  vals = []
  for d, g in zip(depth[..., 0], gt[..., 0]):
    v = d[g > 0]
    vals.append(float(np.std(v) / np.mean(v)) if v.size else 0.0)
  return float(np.mean(vals))


def parse_overrides(items):
  """["use_full_res_multiscale=false", "smoothness_weight=1e-3"] -> SelfSupervisedConfig kwargs.

  Strict: an unknown field raises ValueError; values are parsed by the field's default type.
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised as ss  # pylint: disable=g-import-not-at-top
  fields = {f.name: f for f in dataclasses.fields(ss.SelfSupervisedConfig)}
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or key not in fields:
      raise ValueError(f"--set expected field=value with a SelfSupervisedConfig field "
                       f"({sorted(fields)}), received {item!r}")
    default = fields[key].default
    if isinstance(default, bool):
      if value.lower() not in ("true", "false"):
        raise ValueError(f"--set {key} expected true or false, received {value!r}")
      out[key] = value.lower() == "true"
    elif isinstance(default, tuple):
      out[key] = tuple(int(v) for v in value.split(",") if v)
    else:
      out[key] = type(default)(value)
  return out


def run_variant(variant, train_clips, test_ds, minutes, protocol, chunk_steps=CHUNK_STEPS,
                learning_rate=LEARNING_RATE, overrides=None):
  import keras  # pylint: disable=g-import-not-at-top
  from tfdepth.data import video  # pylint: disable=g-import-not-at-top
  from tfdepth.models import monodepth2, segdepth  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised as ss  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  seg = variant == "segdepth"
  train_ds = video.make_self_supervised_dataset(
      video.clips_to_dataset(train_clips), batch_size=BATCH_SIZE, height=HEIGHT, width=WIDTH,
      training=True, segmentation=seg, cache=True)
  shape = (HEIGHT, WIDTH, 3)
  depth = (segdepth.build_segdepth_net(shape) if seg
           else monodepth2.build_monodepth2_depth_net(shape))
  pose = monodepth2.build_monodepth2_pose_net(shape)
  kwargs = ({"smoothness_weight": ss.SEGDEPTH_SMOOTHNESS_WEIGHT,
             "segmentation_weight": ss.SEGDEPTH_SEGMENTATION_WEIGHT} if seg else {})
  kwargs.update(overrides or {})
  config = ss.SelfSupervisedConfig(**kwargs)
  model = ss.SelfSupervisedDepthModel(depth, pose, config)
  model.compile(optimizer=keras.optimizers.Adam(learning_rate))
  curve = []
  # Training CPU time (all threads, including the first trace; evaluation excluded): the budget.
  # CPU time rather than wall time, so that a shared machine does not shrink the budget.
  train_cpu_s = train_s = 0.0
  steps = 0
  while train_cpu_s < minutes * 60.0:
    t, c = time.time(), time.process_time()
    hist = model.fit(train_ds, steps_per_epoch=chunk_steps, epochs=1, verbose=0)
    train_s += time.time() - t
    train_cpu_s += time.process_time() - c
    steps += chunk_steps
    row = {"step": steps, "train_seconds": round(train_s, 1),
           "train_cpu_seconds": round(train_cpu_s, 1),
           "loss": float(hist.history["loss"][-1]), **evaluate(model, test_ds, protocol)}
    curve.append(row)
    print(variant, row, flush=True)
  return curve


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                      help="training CPU-time budget per variant (evaluation excluded)")
  parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                      help="SelfSupervisedConfig override for every variant (repeatable, strict)")
  parser.add_argument("--precision", default="float32",
                      help="Keras dtype policy: float32 | mixed_bfloat16 | mixed_float16")
  parser.add_argument("--result_name", default=NAME)
  parser.add_argument("--variants", default="monodepth2,segdepth")
  parser.add_argument("--num_train", type=int, default=NUM_TRAIN)
  parser.add_argument("--num_test", type=int, default=NUM_TEST)
  parser.add_argument("--chunk_steps", type=int, default=CHUNK_STEPS)
  parser.add_argument("--learning_rate", type=float, default=LEARNING_RATE)
  parser.add_argument("--merge", action="store_true",
                      help="keep the variants of an earlier --result_name JSON with the same "
                           "settings that this run does not redo (e.g. variants run in parallel)")
  args = parser.parse_args()
  command = " ".join(["python -m benchmarks.monodepth2_learning"] + sys.argv[1:])
  variants = args.variants.split(",")
  overrides = parse_overrides(args.set)
  from trainers import common as trainer_common  # pylint: disable=g-import-not-at-top
  trainer_common.set_precision(args.precision)
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from tfdepth.data import video  # pylint: disable=g-import-not-at-top
  import dataclasses  # pylint: disable=g-import-not-at-top
  protocol = dataclasses.replace(metrics.SYNTHETIC_STREET, name="synthetic_street_median",
                                 median_scaling=True)
  t0 = time.time()
  train_clips, test_clips = render("train", args.num_train), render("test", args.num_test)
  render_s = time.time() - t0
  test_ds = video.make_self_supervised_dataset(video.clips_to_dataset(test_clips), batch_size=10,
                                               height=HEIGHT, width=WIDTH)
  gt = np.stack([c["depth"] for c in test_clips])
  baseline, _ = metrics.evaluate_predictions(list(gt[..., 0]), [np.ones_like(g[..., 0]) for g in gt],
                                             protocol)
  gt_rel_std = rel_std(gt, gt)
  sem = np.stack([c["semantic"] for c in test_clips])
  baseline_boundary = region_abs_rel(gt, np.ones_like(gt), boundary_mask(sem), protocol)
  figures = {"height": HEIGHT, "width": WIDTH, "num_train_clips": args.num_train,
             "num_test_clips": args.num_test, "batch_size": BATCH_SIZE, "learning_rate": args.learning_rate,
             "cpu_minutes_per_variant": args.minutes,
             "precision": args.precision, "config_overrides": overrides, "render_seconds": round(render_s, 1),
             "protocol": protocol.describe(),
             "median_depth_baseline": {"abs_rel": float(baseline["abs_rel"]),
                                       "delta1": float(baseline["delta1"]),
                                       "boundary_abs_rel": baseline_boundary},
             "gt_rel_std": gt_rel_std,
             "variants": {}}
  if args.merge:
    common.merge_variants(figures, args.result_name, variants, check_only=True)
  print("median-depth baseline", figures["median_depth_baseline"], flush=True)
  for variant in variants:
    curve = run_variant(variant, train_clips, test_ds, args.minutes, protocol, args.chunk_steps,
                        args.learning_rate, overrides)
    best = min(curve, key=lambda r: r["abs_rel"])
    figures["variants"][variant] = {"final": curve[-1], "best": best, "curve": curve,
                                    "command": command}
  if args.merge:   # read now, not at the start: a parallel run may have written meanwhile
    common.merge_variants(figures, args.result_name, variants)
  rows = [["median-depth baseline", "-", figures["median_depth_baseline"]["abs_rel"],
           figures["median_depth_baseline"]["boundary_abs_rel"], "-", "-"]]
  for variant, v in figures["variants"].items():
    f = v["final"]
    rows.append([variant, f["step"], f["abs_rel"], f["boundary_abs_rel"], f["ate_3frame"],
                 f.get("ate_5frame", "-")])
  common.print_table(rows, ["model", "steps", "abs_rel", "boundary_abs_rel", "ate_3frame",
                            "ate_5frame"])
  print("written", common.write_result(args.result_name, figures, command))


if __name__ == "__main__":
  main()
