"""Monodepth2 vs Li et al. 2021 (motion fields) on the synthetic street with moving cars.

    python -m benchmarks.dynamic_learning [--minutes=6] \
        [--variants=monodepth2,li2021,li2021_learned_k] [--burnin_steps=100]

Every variant trains from scratch for the same training CPU-time budget (`time.process_time`, all
threads, evaluation excluded, so that other jobs on a shared machine do not shrink it) at 64x192,
batch 8, Adam 2e-4, no XLA, `--precision` (Keras dtype policy, e.g. mixed_bfloat16), on clips
rendered by `tfds_builders.synthetic_world.clips`:
* `monodepth2`: `trainers.self_supervised` (ResNet-18 depth + separate pose net, Monodepth2 losses);
* `li2021`: `trainers.dynamic` (same depth U-Net, scale 0 only, with the released softplus depth
  head instead of the sigmoid disparity; Li's motion-field net, released loss
  weights, gradient clipping 10, residual burn-in `--burnin_steps`; the backward pairs'
  background motion is the inverse of the forward pairs', `DynamicConfig.invert_backward_motion`,
  tfdepth's default), known intrinsics;
* `li2021_learned_k`: the same with one learned K per video (`DynamicConfig.intrinsics_videos`),
  trained on unknown-camera clips: `LEARNED_K_VIDEOS` videos (clip i in video i mod N), each with
  its own random K (`render_clip(random_intrinsics=True, video_index=...)`), whose camera also
  turns by `LEARNED_K_PAN_DEG` (yaw) and `LEARNED_K_TILT_DEG` (pitch) per frame, the same way in
  every clip, with no horizontal flips in training (`LEARNED_K_FLIP_PROBABILITY`); reports the
  relative error of the learned focal lengths against each training video's true ones (mean over
  the videos per axis, `focal_rel_error_fx` / `_fy`, and the largest of all, `_max`);
* `li2021_learned_k_head`: the same clips with the released model's K, predicted per clip by the
  motion net's intrinsics head; focal errors per test clip (mean over the test clips; `_max`).
* `li2021_automask`, `li2021_learned_k_automask`: the same with Monodepth2's auto-masking of
  stationary pixels added to the photometric terms (`DynamicConfig.identity_automask`);
Test metrics: median-scaled AbsRel (protocol `synthetic_street` + per-image median scaling, mean
over images) over all valid pixels and over the moving-object pixels (`moving_mask`; the scale
comes from all valid pixels of the image), after every chunk of steps (the learning curve).
The issue's targets: ≥ 20% lower moving-object AbsRel than Monodepth2 and no worse overall;
learned focal lengths within 10% (on panning clips: the street camera alone barely rotates, and
without rotation the focal length is not observable; README "Dynamic scenes").
"""

import argparse
import dataclasses
import sys
import time

import numpy as np
import tensorflow as tf

from benchmarks import common

NAME = "dynamic_learning"
HEIGHT, WIDTH = 64, 192
NUM_TRAIN, NUM_TEST = 300, 50
BATCH_SIZE = 8
# As benchmarks/monodepth2_learning.py (from scratch: 2x Monodepth2's 1e-4) = Li et al.'s 2e-4.
LEARNING_RATE = 2e-4
CHUNK_STEPS = 50
DEFAULT_MINUTES = 6.0
# Residual-field burn-in for a run of a few hundred steps (released: 20000 of ~10^6 steps).
DEFAULT_BURNIN_STEPS = 100
VARIANTS = ("monodepth2", "li2021", "li2021_learned_k", "li2021_learned_k_head",
            "li2021_automask", "li2021_learned_k_automask")
# Variant-name suffix: the Li et al. loss plus Monodepth2's auto-masking of stationary pixels
# (`trainers.dynamic.DynamicConfig.identity_automask`).
AUTOMASK_SUFFIX = "_automask"
# The unknown-camera clips of the learned-K variants turn by this many degrees per frame about
# the camera's vertical axis (`render_clip(pan_deg=...)`; > 0 turns right): the street camera alone
# turns by <= ~0.5 deg per frame, and under a pure translation the focal length is not observable
# (the flow (f·t_x − (u − c_x)·t_z)/(Z + t_z) involves f only through f·t_x). At 2 deg and
# fx ≈ 111 px (64x192) the rotation moves the image ~3.9 px.
LEARNED_K_PAN_DEG = 2.0
# ... and about its horizontal axis (> 0 looks up): the yaw makes fx observable, the pitch fy.
LEARNED_K_TILT_DEG = 1.0
# Every learned-K clip turns the same way and training does not flip them: a flip mirrors the yaw,
# and the motion net does not learn a rotation that differs from clip to clip within this budget
# (probe, known K, clips turning ±2 deg alternately: the predicted yaw was the same for every clip,
# 0.54-0.89 deg, at steps 50-150; README "Dynamic scenes").
LEARNED_K_FLIP_PROBABILITY = 0.0
# Number of videos (cameras) of the unknown-camera clips: clip i belongs to video i mod N.
LEARNED_K_VIDEOS = 4
# Variant-name suffix: K from the motion net's intrinsics head, per clip (released), not per video.
HEAD_SUFFIX = "_head"


def is_learned_k(variant):
  return variant.startswith("li2021_learned_k")


def render(split, n, random_intrinsics=False):
  """Street clips; unknown-camera clips (`random_intrinsics`) come from `LEARNED_K_VIDEOS`
  cameras and turn by `LEARNED_K_PAN_DEG` / `LEARNED_K_TILT_DEG` per frame."""
  from tfds_builders.synthetic_world import clips  # pylint: disable=g-import-not-at-top
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  out = []
  for i in range(n):
    extra = ({"pan_deg": LEARNED_K_PAN_DEG, "tilt_deg": LEARNED_K_TILT_DEG,
              "video_index": i % LEARNED_K_VIDEOS} if random_intrinsics else {})
    out.append(clips.render_clip("street", HEIGHT, WIDTH, seed=0, split=split, index=i,
                                 random_intrinsics=random_intrinsics,
                                 frame_interval=experiments.SYNTHETIC_VIDEO_FRAME_INTERVAL,
                                 **extra))
  return out


def video_focal_errors(model, train_clips):
  """Relative error |f_learned − f_true| / f_true of fx and fy per training video."""
  true = {}
  for c in train_clips:
    true.setdefault(int(c["video_index"]), c["intrinsics"])
  index = sorted(true)
  k = model.video_intrinsics(tf.constant(index, tf.int32)).numpy()
  t = np.stack([true[i] for i in index])
  return np.stack([np.abs(k[:, 0, 0] - t[:, 0, 0]) / t[:, 0, 0],
                   np.abs(k[:, 1, 1] - t[:, 1, 1]) / t[:, 1, 1]], axis=-1)


def focal_errors(model, test_ds):
  """Relative error |f_learned − f_true| / f_true of fx and fy per test clip (motion-net head)."""
  from trainers import dynamic  # pylint: disable=g-import-not-at-top
  errs = []
  for batch in test_ds:
    frames = tf.cast(batch["frames"], tf.float32)
    motion = model.predict_motion(frames, model.predict_depths(frames))
    k = dynamic.clip_intrinsics(motion["intrinsics"]).numpy()
    true = batch["intrinsics"].numpy()
    for kk, tt in zip(k, true):
      errs.append([abs(kk[0, 0] - tt[0, 0]) / tt[0, 0], abs(kk[1, 1] - tt[1, 1]) / tt[1, 1]])
  return np.asarray(errs)


def evaluate(model, test_ds, moving, protocol, learned_k, train_clips=None):
  from benchmarks.monodepth2_learning import region_abs_rel  # pylint: disable=g-import-not-at-top
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised as ss  # pylint: disable=g-import-not-at-top
  res = ss.predict_split(model, test_ds, with_poses=False)
  table, _ = metrics.evaluate_predictions(list(res["gt"][..., 0]), list(res["pred"][..., 0]),
                                          protocol)
  out = {"abs_rel": float(table["abs_rel"]), "delta1": float(table["delta1"]),
         "moving_abs_rel": region_abs_rel(res["gt"], res["pred"], moving, protocol)}
  if learned_k:
    errs = (video_focal_errors(model, train_clips) if model.video_intrinsics is not None
            else focal_errors(model, test_ds))
    out["focal_rel_error_fx"] = float(errs[:, 0].mean())
    out["focal_rel_error_fy"] = float(errs[:, 1].mean())
    out["focal_rel_error_max"] = float(errs.max())
  return out


def build_model(variant, burnin_steps, base_channels):
  import keras  # pylint: disable=g-import-not-at-top
  from tfdepth.models import monodepth2, motion_net  # pylint: disable=g-import-not-at-top
  from trainers import dynamic  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised as ss  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  shape = (HEIGHT, WIDTH, 3)
  if variant == "monodepth2":
    model = ss.SelfSupervisedDepthModel(monodepth2.build_monodepth2_depth_net(shape),
                                        monodepth2.build_monodepth2_pose_net(shape),
                                        ss.SelfSupervisedConfig())
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), jit_compile=False)
    return model
  learned = is_learned_k(variant)
  head = variant.endswith(HEAD_SUFFIX)
  model = dynamic.DynamicDepthModel(
      monodepth2.build_monodepth2_depth_net(shape, scales=(0,), output=dynamic.DEPTH_NET_OUTPUT),
      motion_net.build_motion_net((HEIGHT, WIDTH, motion_net.MOTION_INPUT_CHANNELS),
                                  learn_intrinsics=head, base_channels=base_channels),
      dynamic.DynamicConfig(motion_field_burnin_steps=burnin_steps, learn_intrinsics=learned,
                            intrinsics_videos=LEARNED_K_VIDEOS if learned and not head else 0,
                            identity_automask=variant.endswith(AUTOMASK_SUFFIX)))
  model.compile(optimizer=dynamic.make_optimizer(LEARNING_RATE), jit_compile=False)
  return model


def run_variant(variant, clips_by_kind, minutes, protocol, args):
  from tfdepth.data import video  # pylint: disable=g-import-not-at-top
  learned = is_learned_k(variant)
  train_clips, test_clips = clips_by_kind["unknown" if learned else "known"]
  train_ds = video.make_self_supervised_dataset(
      video.clips_to_dataset(train_clips), batch_size=BATCH_SIZE, height=HEIGHT, width=WIDTH,
      training=True, cache=True,
      **({"flip_probability": LEARNED_K_FLIP_PROBABILITY} if learned else {}))
  test_ds = video.make_self_supervised_dataset(video.clips_to_dataset(test_clips), batch_size=10,
                                               height=HEIGHT, width=WIDTH)
  moving = np.stack([c["moving_mask"][..., 0] > 0 for c in test_clips])
  model = build_model(variant, args.burnin_steps, args.base_channels)
  curve, train_s, train_cpu_s, steps = [], 0.0, 0.0, 0
  while train_cpu_s < minutes * 60.0:
    t, c = time.time(), time.process_time()
    hist = model.fit(train_ds, steps_per_epoch=args.chunk_steps, epochs=1, verbose=0)
    train_s += time.time() - t
    train_cpu_s += time.process_time() - c
    steps += args.chunk_steps
    row = {"step": steps, "train_seconds": round(train_s, 1),
           "train_cpu_seconds": round(train_cpu_s, 1),
           "loss": float(hist.history["loss"][-1]),
           **evaluate(model, test_ds, moving, protocol, learned, train_clips)}
    curve.append(row)
    print(variant, row, flush=True)
  return curve


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                      help="training wall-clock budget per variant (evaluation excluded)")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--num_train", type=int, default=NUM_TRAIN)
  parser.add_argument("--num_test", type=int, default=NUM_TEST)
  parser.add_argument("--chunk_steps", type=int, default=CHUNK_STEPS)
  parser.add_argument("--burnin_steps", type=int, default=DEFAULT_BURNIN_STEPS)
  parser.add_argument("--base_channels", type=int, default=16,
                      help="motion-net width (released: 16)")
  parser.add_argument("--precision", default="float32",
                      help="Keras dtype policy: float32 | mixed_bfloat16 | mixed_float16")
  parser.add_argument("--result_name", default=NAME)
  parser.add_argument("--merge", action="store_true",
                      help="keep the variants of an earlier --result_name JSON with the same "
                           "settings that this run does not redo (e.g. variants run in parallel)")
  args = parser.parse_args()
  from trainers import common as trainer_common  # pylint: disable=g-import-not-at-top
  trainer_common.set_precision(args.precision)
  from benchmarks.monodepth2_learning import region_abs_rel  # pylint: disable=g-import-not-at-top
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  protocol = dataclasses.replace(metrics.SYNTHETIC_STREET, name="synthetic_street_median",
                                 median_scaling=True)
  variants = args.variants.split(",")
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    raise SystemExit(f"unknown variants {unknown}; expected a subset of {VARIANTS}")
  t0 = time.time()
  clips_by_kind = {"known": (render("train", args.num_train), render("test", args.num_test))}
  if any(is_learned_k(v) for v in variants):
    clips_by_kind["unknown"] = (render("train", args.num_train, True),
                                render("test", args.num_test, True))
  render_s = time.time() - t0
  test_clips = clips_by_kind["known"][1]
  gt = np.stack([c["depth"] for c in test_clips])
  moving = np.stack([c["moving_mask"][..., 0] > 0 for c in test_clips])
  constant = [np.ones_like(g[..., 0]) for g in gt]
  baseline, _ = metrics.evaluate_predictions(list(gt[..., 0]), constant, protocol)
  figures = {
      "height": HEIGHT, "width": WIDTH, "num_train_clips": args.num_train,
      "num_test_clips": args.num_test, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE,
      "cpu_minutes_per_variant": args.minutes, "precision": args.precision,
      "burnin_steps": args.burnin_steps,
      "motion_base_channels": args.base_channels, "render_seconds": round(render_s, 1),
      "moving_pixel_fraction": float(moving.mean()), "protocol": protocol.describe(),
      "median_depth_baseline": {"abs_rel": float(baseline["abs_rel"]),
                                "moving_abs_rel": region_abs_rel(gt, np.ones_like(gt), moving,
                                                                 protocol)},
      "variants": {}}
  command = " ".join(["python -m benchmarks.dynamic_learning"] + sys.argv[1:])
  if args.merge:
    common.merge_variants(figures, args.result_name, variants, check_only=True)
  print("median-depth baseline", figures["median_depth_baseline"], flush=True)
  for variant in variants:
    curve = run_variant(variant, clips_by_kind, args.minutes, protocol, args)
    figures["variants"][variant] = {"final": curve[-1],
                                    "best": min(curve, key=lambda r: r["abs_rel"]),
                                    "curve": curve, "command": command}
    if is_learned_k(variant):
      from tfdepth.models import motion_net  # pylint: disable=g-import-not-at-top
      figures["variants"][variant]["unknown_camera_clips"] = {
          "videos": LEARNED_K_VIDEOS, "pan_deg_per_frame": LEARNED_K_PAN_DEG,
          "tilt_deg_per_frame": LEARNED_K_TILT_DEG,
          "flip_probability": LEARNED_K_FLIP_PROBABILITY,
          "per_video_intrinsics_gain": motion_net.PER_VIDEO_INTRINSICS_GAIN}
  if args.merge:   # read now, not at the start: a parallel run may have written meanwhile
    common.merge_variants(figures, args.result_name, variants)
  rows = [["median-depth baseline", "-", figures["median_depth_baseline"]["abs_rel"],
           figures["median_depth_baseline"]["moving_abs_rel"], "-"]]
  for variant, v in figures["variants"].items():
    f = v["final"]
    focal = (f"{f['focal_rel_error_fx']:.3f}/{f['focal_rel_error_fy']:.3f}"
             if "focal_rel_error_fx" in f else "-")
    rows.append([variant, f["step"], f["abs_rel"], f["moving_abs_rel"], focal])
  common.print_table(rows, ["model", "steps", "abs_rel", "moving_abs_rel", "focal err fx/fy"])
  print("written", common.write_result(args.result_name, figures, command))


if __name__ == "__main__":
  main()
