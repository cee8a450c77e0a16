"""A tiny registered experiment for the multi-process tests (imported by them and by train_cli).

Eigen et al. 2014's coarse + fine network (`tfdepth.models.build_eigen2014`) with a 16-unit
hidden layer and no dropout: about 20 variables, so each `tfdepth-train` process traces its
train/test functions in seconds, and without BatchNormalization or dropout a step computes the
same function on any number of replicas (so multi-worker training can be compared with a
single device). Data: the synthetic street scene at 32x64.
"""

from trainers import experiments

NAME = "reliability_tiny_eigen"
FC_UNITS = 16          # the paper's 4096 would only slow the tests down
SYNTHETIC_MAX_DEPTH = 80.0  # metres; as fastdepth_synthetic_street (KITTI cap)

CONFIG = experiments.ExperimentConfig(
    name=NAME,
    description="Tiny Eigen 2014 network on 32x64 synthetic street data (tests only).",
    model=experiments.ModelConfig("eigen2014", {"fc_units": FC_UNITS, "dropout_rate": 0.0}),
    data=experiments.DataConfig(
        tfds_name="synthetic_world/street",
        builder_kwargs={"height": 32, "width": 64, "num_train": 12, "num_validation": 2,
                        "num_test": 2},
        height=32, width=64, min_crop_fraction=1.0),
    optimizer=experiments.OptimizerConfig("adam", learning_rate=1e-3, schedule="cosine"),
    losses=(experiments.LossConfig("silog", 1.0, kwargs={"variance_focus": 0.85}),
            experiments.LossConfig("l1", 0.1)),
    train=experiments.TrainConfig(batch_size=4, epochs=1, steps_per_epoch=3, validation_steps=1,
                                  seed=0),
    metrics_protocol="synthetic_street",
    max_depth=SYNTHETIC_MAX_DEPTH,
)

if NAME not in experiments.list_experiments():
  experiments.register_experiment(CONFIG)

# Self-supervised counterpart: Monodepth2 (ResNet-18 depth + pose nets) on 3-frame clips of the
# synthetic street at 64x64 (the smallest size the depth decoder's reflection padding of the
# 1/32 feature map takes), one scale. Its
# BatchNormalization layers use cross-replica statistics (`train.synchronized_batchnorm`), so
# 2 replicas x 1 clip compute the same step as 1 device x 2 clips. The per-pixel minimum over
# sources and the auto-mask are off: they are arg-min selections, so a round-off difference of
# 1e-7 flips near-tied pixels and changes the gradient discretely (measured with them on: weight
# differences up to 5e-5 after 2 steps; off: below 2e-8). tests/test_self_supervised.py checks
# the full Monodepth2 loss under MirroredStrategy on a small network.
SELF_SUPERVISED_NAME = "reliability_tiny_monodepth2"
SELF_SUPERVISED_CONFIG = experiments.ExperimentConfig(
    name=SELF_SUPERVISED_NAME,
    description="Tiny Monodepth2 on 64x64 synthetic street clips (tests only).",
    model=experiments.ModelConfig("monodepth2", {"num_layers": 18}),
    data=experiments.DataConfig(
        tfds_name="synthetic_world/street",
        builder_kwargs={"height": 64, "width": 64, "num_train": 8, "num_validation": 2,
                        "num_test": 2},
        height=64, width=64),
    optimizer=experiments.OptimizerConfig("adam", learning_rate=1e-4, schedule="constant"),
    losses=(experiments.LossConfig("photometric", 1.0, target_key="",
                                   kwargs={"scales": (0,), "use_automask": False,
                                           "use_min_reprojection": False}),
            experiments.LossConfig("smoothness", 1e-3, target_key="")),
    train=experiments.TrainConfig(batch_size=2, epochs=1, steps_per_epoch=2, validation_steps=1,
                                  seed=0, synchronized_batchnorm=True),
    metrics_protocol="synthetic_street",
)

if SELF_SUPERVISED_NAME not in experiments.list_experiments():
  experiments.register_experiment(SELF_SUPERVISED_CONFIG)
