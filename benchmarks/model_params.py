"""Parameter counts of tfdepth's published model configurations next to the papers' figures.

Run: ``python -m benchmarks.model_params``. Prints a table and writes
``benchmarks/results/model_params.json``. Builds each model once (no forward pass).

"trainable" is what PyTorch's ``sum(p.numel() for p in model.parameters())`` counts (BN gamma and
beta, no running statistics); "total" is Keras' ``count_params()`` (adds BN moving mean/variance
and tfdepth's 6 frozen input-normalisation weights).
"""

import numpy as np

from benchmarks import common
from tfdepth import models

# (key, builder kwargs, published figure or None, source of the figure).
CONFIGS = (
    ("fastdepth", dict(input_shape=(224, 224, 3)), 3.93e6,
     "task brief (FastDepth, Wofk et al. 2019, MobileNet-NNConv5 with additive skips, before "
     "NetAdapt pruning); not found in the stored paper text"),
    ("monodepth2_depth", dict(input_shape=(192, 640, 3), num_layers=18), 14.3e6,
     "task brief (Monodepth2 ResNet-18 depth network, Godard et al. 2019); equals torchvision "
     "ResNet-18 without fc (11,176,512) + decoder (3,152,724)"),
    ("monodepth2_pose", dict(input_shape=(192, 640, 3), num_layers=18, num_input_frames=2),
     13.0e6, "task brief; not verified. Reference code counts 12,500,492 (its last 1x1 conv "
     "predicts 2 transforms, 12 channels) vs 12,498,950 here (6*(N-1) = 6 channels)"),
    ("fcrn", dict(input_shape=(224, 320, 3), num_layers=50), 63.6e6,
     "Laina et al. 2016, Table 1 (up-projection, ResNet-50)"),
    ("dorn", dict(input_shape=(256, 352, 3), num_layers=101), None,
     "no published count; full-image FC pools to a 4x4 grid (our choice)"),
    ("sid_classifier", dict(input_shape=(256, 352, 3), num_layers=101), None,
     "DeepLab v2 ResNet-101 + ASPP-L, 71 classes; no published count"),
    ("eigen2014", dict(input_shape=(224, 288, 3)), None,
     "Eigen et al. 2014 coarse + fine; no published count (FC sizes depend on the input size)"),
    ("eigen2015", dict(input_shape=(224, 288, 3)), None,
     "Eigen & Fergus 2015 VGG-16, depth + normals + 40 labels; no published count"),
    ("dpt", dict(input_shape=(384, 384, 3)), None,
     "DPT-Base (ViT-B/16 hooks 2/5/8/11); no verified published count (ViT-B/16 backbone "
     "alone is 85.8M at 224x224)"),
)


def _trainable(model):
  return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def main():
  rows, figures = [], {}
  for key, kwargs, published, source in CONFIGS:
    model = models.get_model(key, **kwargs)
    trainable, total = _trainable(model), int(model.count_params())
    rel = None if published is None else (trainable - published) / published
    figures[key] = {"config": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in kwargs.items()},
                    "trainable": trainable, "total": total, "published": published,
                    "relative_difference": rel, "source": source}
    rows.append([key, trainable, total, "-" if published is None else f"{published / 1e6:.2f}M",
                 "-" if rel is None else f"{100 * rel:+.2f}%"])
    del model
  common.print_table(rows, ["model", "trainable", "total", "published", "diff"])
  path = common.write_result("model_params", figures)
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
