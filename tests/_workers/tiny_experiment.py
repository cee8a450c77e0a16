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
