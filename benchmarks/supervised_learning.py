"""Learning check of the supervised model zoo (issue 4) on the synthetic world, from scratch on CPU.

    taskset -c 0 python -m benchmarks.supervised_learning [--minutes=2.5] [--models=fastdepth,dorn]
    python -m benchmarks.supervised_learning --markdown     # README table from the JSON only

Every supervised model of the zoo trains from random initialisation on the synthetic `street`
scene (KITTI-like, 0-80 m) and, for the NYU-style models (Eigen 2014, Eigen 2015, FCRN, DPT), on
the synthetic `indoor` scene (NYU-like, 0-10 m), for a fixed CPU-time budget per
(model, scene) pair (`--minutes` of process CPU time, including the first trace; evaluation
excluded), so that the budget is the same computation on a shared machine.
Then its test split is evaluated with the scene's `tfdepth.metrics` protocol (`synthetic_street`:
1e-3 < gt < 80 m; `synthetic_indoor`: 1e-3 < gt < 10 m; no crop, no median scaling; per-image
metrics, mean over images; `trainers.evaluate.metric_table`) next to the **median-depth
baseline**: every pixel of an image predicted as the median of that image's valid ground truth
(a constant per image, no scaling; it knows the true scale, so it is a strong baseline for AbsRel).

Everything is built from the registered experiments (`trainers.experiments`) with overrides, and
the `trainers.common` building blocks (`prepare_builder`, `make_datasets`, `build_trainer`):
each model keeps its experiment's loss terms (Eigen: scale-invariant λ 0.5 [+ gradient matching
for Eigen 2015]; FCRN: berHu; FastDepth: SILog + 0.1 L1; DORN: ordinal regression over 80 SID
bins; SID: cross-entropy over 71 SID classes; DPT: SILog). Deviations from the registered /
published settings, all for a CPU budget of minutes (also written to the JSON `figures`):

  * resolution 64x192 (street) and 96x128 (indoor) instead of the papers' sizes; 512 / 32 / 64
    rendered train / validation / test frames per scene; batch 8; no validation during training;
  * optimizer Adam with a constant rate (`LEARNING_RATES`) for every model (the experiments' SGD
    schedules are tuned for 10^5 steps from ImageNet weights; nothing is pretrained here);
  * street frames are not randomly cropped/zoomed (as `fastdepth_synthetic_street`: the fixed
    camera's image row is a depth cue); horizontal flips and colour jitter stay on;
  * widths (`MODEL_OVERRIDES`): Eigen 2014 / 2015 hidden FC 4096 -> 512; DORN and the SID
    classifier on a dilated ResNet-18 instead of ResNet-101, DORN's scene-understanding module at
    1/4 width (128 / 512 channels instead of 512 / 2048); DPT on a ViT-Tiny/16 (DeiT-Ti: 192 wide,
    12 blocks, 3 heads, MLP 768) instead of ViT-Base, reassemble channels and fusion width scaled
    by the same 1/4 (24/48/96/192, 64); DPT's depth head is sigmoid x the scene's cap (with the
    experiment's 100-step linear warm-up); FCRN keeps ResNet-50 and its full decoder; FastDepth keeps its experiment's width 0.5;
  * Monodepth2's depth network (ResNet-18 U-Net, sigmoid disparity) is trained *supervised*: its
    `disp_0` goes through Monodepth2's `disp_to_depth` (0.1-100 m,
    `tfdepth.models.segdepth.with_depth_output`) and the full-resolution depth gets
    `fastdepth_synthetic_street`'s loss (SILog + 0.1 L1); the disparity heads of scales 1-3 are
    not built (they would get no gradient).

Writes benchmarks/results/supervised_learning.json (after every pair, so a killed run keeps the
finished ones; `--merge` keeps pairs of an earlier JSON that this run does not redo; every pair
records the `command` and `date` that measured it) and prints a
table. `--markdown` prints the README table of the JSON without training.
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
import time

import numpy as np

from benchmarks import common as bench_common

NAME = "supervised_learning"
DEFAULT_MINUTES = 2.5          # per (model, scene) pair, one CPU core (issue 4 budget)
BATCH_SIZE = 8
# Steps between CPU-budget checks (one Keras "epoch" of the endless training stream).
CHUNK_STEPS = 10
# Synthetic scenes: resolution, split sizes, evaluation protocol and depth cap (metres; KITTI 80 m
# and NYU 10 m caps, Eigen et al. 2014). Street frames are not cropped (see module docstring).
SCENES = {
    "street": {"height": 64, "width": 192, "protocol": "synthetic_street", "max_depth": 80.0,
               "min_crop_fraction": 1.0},
    "indoor": {"height": 96, "width": 128, "protocol": "synthetic_indoor", "max_depth": 10.0,
               "min_crop_fraction": 0.8},
}
NUM_TRAIN, NUM_VALIDATION, NUM_TEST = 512, 32, 64
# Model -> (registered experiment, scenes). Monodepth2 has no supervised experiment: it borrows
# the data / loss settings of `fastdepth_synthetic_street` and replaces the network.
MODELS = {
    "eigen2014": ("eigen2014_nyu", ("street", "indoor")),
    "eigen2015": ("eigen2015_nyu", ("street", "indoor")),
    "fcrn": ("fcrn_nyu", ("street", "indoor")),
    "fastdepth": ("fastdepth_synthetic_street", ("street",)),
    "dorn": ("dorn_kitti", ("street",)),
    "sid": ("sid_deeplab_kitti", ("street",)),
    "dpt": ("dpt_nyu", ("street", "indoor")),
    "monodepth2": ("fastdepth_synthetic_street", ("street",)),
}
# CPU-sized widths (see the module docstring for the published values).
EIGEN_CPU_FC_UNITS = 512
# DPT keeps the experiment's 100-step linear warm-up (`experiments.DPT_WARMUP_STEPS`): without a
# warm-up its sigmoid head saturated at the cap within 10 steps; with 50 steps it still ended at
# the 10 m cap on `indoor` (AbsRel 2.49), with 100 it learns (0.316 at 2e-4; 0.342 with 50 steps
# at 1e-4; one 2-CPU-minute probe each, 2026-12-04).
DPT_TINY = ["model.kwargs.hidden_size=192", "model.kwargs.num_layers=12",
            "model.kwargs.num_heads=3", "model.kwargs.mlp_dim=768",
            "model.kwargs.reassemble_channels=[24, 48, 96, 192]", "model.kwargs.features=64"]
MODEL_OVERRIDES = {
    "eigen2014": [f"model.kwargs.fc_units={EIGEN_CPU_FC_UNITS}"],
    "eigen2015": [f"model.kwargs.fc_units={EIGEN_CPU_FC_UNITS}"],
    "fcrn": [],
    "fastdepth": [],
    "dorn": ["model.kwargs.num_layers=18", "model.kwargs.width_multiplier=0.25"],
    "sid": ["model.kwargs.num_layers=18"],
    "dpt": DPT_TINY,
    "monodepth2": [],
}
# Adam learning rates from scratch (tfdepth choices: 1e-3 for the convolutional networks, as the
# demo's 2e-3 halved for the larger ones; 2e-4 for the transformer, which diverges at 1e-3).
LEARNING_RATES = {"dpt": 2e-4, "fastdepth": 2e-3}
DEFAULT_LEARNING_RATE = 1e-3
MONODEPTH2_NUM_LAYERS = 18     # Godard et al. 2019 (ResNet-18 depth encoder)
# Supervised, only the full-resolution disparity is trained; the heads of scales 1-3 would get no
# gradient, so they are not built.
MONODEPTH2_SUPERVISED_SCALES = (0,)


def scene_overrides(scene):
  """Overrides that point an experiment at the synthetic `scene` at the benchmark's size."""
  s = SCENES[scene]
  return [
      f"data.tfds_name=synthetic_world/{scene}", "data.builder_kwargs.height=" + str(s["height"]),
      f"data.builder_kwargs.width={s['width']}", f"data.builder_kwargs.num_train={NUM_TRAIN}",
      f"data.builder_kwargs.num_validation={NUM_VALIDATION}",
      f"data.builder_kwargs.num_test={NUM_TEST}", f"data.height={s['height']}",
      f"data.width={s['width']}", "data.train_split=train", "data.validation_split=validation",
      "data.test_split=test", f"data.min_crop_fraction={s['min_crop_fraction']}",
      f"metrics_protocol={s['protocol']}", f"max_depth={s['max_depth']}",
  ]


def model_config(model, scene):
  """The resolved `ExperimentConfig` of one (model, scene) pair of the benchmark."""
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  experiment, scenes = MODELS[model]
  if scene not in scenes:
    raise ValueError(f"model {model!r} runs on scenes {scenes}, received {scene!r}")
  base = experiments.get_experiment(experiment)
  overrides = scene_overrides(scene) + list(MODEL_OVERRIDES[model]) + [
      "optimizer.name=adam", "optimizer.schedule=constant", "optimizer.clipnorm=none",
      f"optimizer.learning_rate={LEARNING_RATES.get(model, DEFAULT_LEARNING_RATE)}",
      f"train.batch_size={BATCH_SIZE}", "train.mixed_precision=float32",
      "train.jit_compile=false"]
  if "max_depth" in base.model.kwargs:   # bounded heads follow the scene's depth cap
    overrides.append(f"model.kwargs.max_depth={SCENES[scene]['max_depth']}")
  return experiments.apply_overrides(base, overrides)


def monodepth2_network(config):
  """Monodepth2's depth net with a `"depth"` output (disp_to_depth of `disp_0`, 0.1-100)."""
  from tfdepth.models import monodepth2  # pylint: disable=g-import-not-at-top
  from tfdepth.models import segdepth  # pylint: disable=g-import-not-at-top
  net = monodepth2.build_monodepth2_depth_net((config.data.height, config.data.width, 3),
                                              num_layers=MONODEPTH2_NUM_LAYERS,
                                              scales=MONODEPTH2_SUPERVISED_SCALES)
  return segdepth.with_depth_output(net, name="monodepth2_supervised")


NETWORK_FACTORIES = {"monodepth2": monodepth2_network}


def build_trainer(config, total_steps, network_fn=None):
  """`trainers.common.build_trainer`, or the same with the network from `network_fn(config)`."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  from trainers import supervised  # pylint: disable=g-import-not-at-top
  if network_fn is None:
    return common.build_trainer(config, total_steps)
  common.set_precision(config.train.mixed_precision)
  keras.utils.set_random_seed(config.train.seed)
  model = supervised.SupervisedDepthModel(
      network_fn(config), supervised.loss_terms_from_config(config.losses),
      depth_metrics=metrics.standard_metrics(config.metrics_protocol),
      max_depth=config.max_depth, name="supervised")
  model.compile(optimizer=common.build_optimizer(config.optimizer, total_steps),
                jit_compile=config.train.jit_compile)
  model(tf.zeros([1, config.data.height, config.data.width, 3]))
  return model


def _cpu_budget_stop(seconds, cpu_start):
  """Stops `fit` at the end of the first chunk after `seconds` of this process's CPU time.

  CPU time (`time.process_time`, all threads) rather than wall time, so that the budget means
  the same amount of computation on a shared machine; pinned to one core (`taskset -c 0`) it is
  at most one CPU-second per second.
  """
  import keras  # pylint: disable=g-import-not-at-top

  class CpuBudgetStop(keras.callbacks.Callback):

    def on_epoch_end(self, epoch, logs=None):
      if time.process_time() - cpu_start >= seconds:
        self.model.stop_training = True

  return CpuBudgetStop()


def collect(builder, split, batch_size=BATCH_SIZE):
  """`(images (N, H, W, 3), depths (N, H, W, 1))` of a split at its stored size, no augmentation."""
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top
  images, depths = [], []
  for b in make_supervised_dataset(builder, split=split, batch_size=batch_size):
    images.append(b["image"].numpy())
    depths.append(b["depth"].numpy())
  return np.concatenate(images), np.concatenate(depths)


def median_baseline(depths, protocol):
  """Per-image constant prediction: the median of the image's valid GT (protocol range)."""
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  p = metrics.get_protocol(protocol)
  preds = np.empty_like(depths)
  for i, d in enumerate(depths):
    valid = d[(d > p.min_depth) & (d < p.max_depth)]
    preds[i] = np.median(valid) if valid.size else p.max_depth
  return preds


def evaluate(gts, preds, protocol):
  from trainers import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  table = evaluate_lib.metric_table(gts, preds, protocol)
  return {k: float(table[k]) for k in ("abs_rel", "delta1", "rmse")}


def run_pair(model, scene, minutes, data_dir, test_data):
  """Trains one (model, scene) pair for `minutes` and evaluates it; returns the figures."""
  from trainers import common  # pylint: disable=g-import-not-at-top
  config = model_config(model, scene)
  builder = common.prepare_builder(config.data, data_dir)
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(config.train.seed)
  train_ds = common.make_datasets(config, builder, ("train",))["train"]
  # Schedules are constant, so the step count only sizes (unused) decays.
  trainer = build_trainer(config, total_steps=1, network_fn=NETWORK_FACTORIES.get(model))
  start, cpu_start = time.time(), time.process_time()
  history = trainer.fit(train_ds, epochs=10 ** 6, steps_per_epoch=CHUNK_STEPS, verbose=0,
                        callbacks=[_cpu_budget_stop(minutes * 60.0, cpu_start)])
  train_s = time.time() - start
  train_cpu_s = time.process_time() - cpu_start
  steps = len(history.history["loss"]) * CHUNK_STEPS
  images, gts = test_data
  preds = np.asarray(trainer.predict(images, batch_size=BATCH_SIZE, verbose=0)["depth"],
                     np.float32)
  result = evaluate(gts, preds, config.metrics_protocol)
  result.update({
      "experiment": MODELS[model][0], "steps": steps, "train_seconds": round(train_s, 1),
      "train_cpu_seconds": round(train_cpu_s, 1),
      "train_images_per_cpu_s": round(steps * BATCH_SIZE / train_cpu_s, 2),
      "final_loss": float(history.history["loss"][-1]),
      "params": int(trainer.network.count_params()),
      "learning_rate": config.optimizer.learning_rate,
      "losses": {l.name: l.weight for l in config.losses},
      "model_kwargs": {k: v for k, v in config.model.kwargs.items()},
      "overrides": list(MODEL_OVERRIDES[model]),
      "height": config.data.height, "width": config.data.width,
  })
  return result


def figures_settings(minutes):
  return {
      "minutes_per_pair": minutes, "batch_size": BATCH_SIZE, "scenes": SCENES,
      "num_train": NUM_TRAIN, "num_validation": NUM_VALIDATION, "num_test": NUM_TEST,
      "optimizer": "adam, constant rate", "learning_rates": {
          m: LEARNING_RATES.get(m, DEFAULT_LEARNING_RATE) for m in MODELS},
      "model_overrides": MODEL_OVERRIDES,
      "deviations": [
          "resolution 64x192 (street) / 96x128 (indoor) instead of the papers' sizes",
          "Adam with a constant rate and random initialisation instead of the experiments' "
          "schedules / ImageNet weights",
          f"Eigen 2014/2015 hidden FC {EIGEN_CPU_FC_UNITS} instead of 4096",
          "DORN: dilated ResNet-18 and 1/4-width scene understanding module instead of ResNet-101",
          "SID classifier: dilated ResNet-18 instead of ResNet-101",
          "DPT: ViT-Tiny/16 (192 wide, 12 blocks, 3 heads, MLP 768), reassemble 24/48/96/192, "
          "fusion 64, instead of ViT-Base/16 (768, 96/192/384/768, 256); sigmoid x cap head",
          "Monodepth2 depth net trained supervised (SILog + 0.1 L1 on disp_to_depth(disp_0))",
          "street frames without random crop/zoom; no validation during training",
      ],
      "baseline": "per-image median of the valid ground truth as a constant prediction, "
                  "no scaling",
      "budget_note": "training CPU time (time.process_time, one core) per pair includes the first trace; evaluation excluded",
  }


def result_path(name=NAME):
  return os.path.join(bench_common.RESULTS_DIR, f"{name}.json")


def markdown(record):
  """README Markdown table of a `supervised_learning.json` record (its `figures` dict)."""
  figures = record["figures"] if "figures" in record else record
  lines = ["| model | scene | size | steps | train CPU s | AbsRel | δ1 | baseline AbsRel | "
           "baseline δ1 | AbsRel / baseline |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for key in sorted(figures.get("results", {})):
    r = figures["results"][key]
    model, scene = key.split("/")
    base = figures["baselines"][scene]
    lines.append(
        f"| {model} | {scene} | {r['height']}x{r['width']} | {r['steps']} | "
        f"{r.get('train_cpu_seconds', r['train_seconds']):.0f} | {r['abs_rel']:.3f} | "
        f"{r['delta1']:.3f} | "
        f"{base['abs_rel']:.3f} | {base['delta1']:.3f} | {r['abs_rel'] / base['abs_rel']:.2f} |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--result_name", default=NAME,
                      help="results JSON stem (e.g. one per process when pairs run in parallel)")
  parser.add_argument("--models", default=",".join(MODELS),
                      help=f"comma-separated subset of {sorted(MODELS)}")
  parser.add_argument("--scenes", default=",".join(SCENES), help="subset of street,indoor")
  parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                      help="training CPU-time budget (minutes) per (model, scene) pair")
  parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(),
                                                         "tfdepth_benchmark_tfds"),
                      help="TFDS data dir for the rendered scenes (reused between runs)")
  parser.add_argument("--merge", action="store_true",
                      help="keep the pairs of an existing results JSON that this run does not redo")
  parser.add_argument("--markdown", action="store_true",
                      help="print the README table of the results JSON and exit (no training)")
  args = parser.parse_args(argv)
  if args.markdown:
    with open(result_path()) as f:
      print(markdown(json.load(f)))
    return
  models = [m for m in args.models.split(",") if m]
  scenes = [s for s in args.scenes.split(",") if s]
  unknown = sorted(set(models) - set(MODELS)) + sorted(set(scenes) - set(SCENES))
  if unknown:
    parser.error(f"unknown models/scenes {unknown}; expected models from {sorted(MODELS)} and "
                 f"scenes from {sorted(SCENES)}")
  from trainers import common  # pylint: disable=g-import-not-at-top
  figures = {**figures_settings(args.minutes), "baselines": {}, "results": {}}
  if args.merge and os.path.exists(result_path(args.result_name)):
    with open(result_path(args.result_name)) as f:
      old = json.load(f)["figures"]
    figures["results"].update(old.get("results", {}))
    figures["baselines"].update(old.get("baselines", {}))
  command = " ".join(["python -m benchmarks.supervised_learning"] + sys.argv[1:])
  if args.merge:
    command += " (merged: each pair carries the command and date that measured it)"
  test_data = {}
  for scene in scenes:
    pairs = [m for m in models if scene in MODELS[m][1]]
    if not pairs:
      continue
    t = time.time()
    builder = common.prepare_builder(model_config(pairs[0], scene).data, args.data_dir)
    test_data[scene] = collect(builder, "test")
    gts = test_data[scene][1]
    protocol = SCENES[scene]["protocol"]
    figures["baselines"][scene] = {**evaluate(gts, median_baseline(gts, protocol), protocol),
                                   "data_seconds": round(time.time() - t, 1)}
    print(f"{scene}: median-depth baseline {figures['baselines'][scene]}", flush=True)
    for model in pairs:
      result = run_pair(model, scene, args.minutes, args.data_dir, test_data[scene])
      result["command"] = " ".join(["python -m benchmarks.supervised_learning"] + sys.argv[1:])
      result["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
      figures["results"][f"{model}/{scene}"] = result
      print(f"{model}/{scene}: " + json.dumps({k: result[k] for k in (
          "abs_rel", "delta1", "steps", "train_seconds", "params")}), flush=True)
      bench_common.write_result(args.result_name, figures, command)   # incremental
  rows = []
  for key in sorted(figures["results"]):
    r = figures["results"][key]
    base = figures["baselines"][key.split("/")[1]]
    rows.append([key, r["steps"], r["train_seconds"], r["abs_rel"], r["delta1"],
                 base["abs_rel"], base["delta1"], r["abs_rel"] / base["abs_rel"]])
  bench_common.print_table(rows, ["model/scene", "steps", "train s", "abs_rel", "delta1",
                                  "baseline abs_rel", "baseline delta1", "abs_rel/baseline"])
  print("written", bench_common.write_result(args.result_name, figures, command))


if __name__ == "__main__":
  main()
