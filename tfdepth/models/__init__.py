"""Depth networks and encoders as functional builders (see docs/DESIGN.md).

Each builder ``build_xxx(input_shape=..., name="xxx", **options) -> keras.Model`` names every
layer ``f"{name}_..."`` and returns a dict of outputs. :func:`get_model` looks builders up by
name in :data:`MODEL_BUILDERS`.
"""

from tfdepth.errors import ConfigError
from tfdepth.models._common import synchronize_batchnorm
from tfdepth.models.encoders import build_mobilenet_v1_encoder
from tfdepth.models.encoders import build_mobilenet_v2_encoder
from tfdepth.models.encoders import build_resnet_encoder
from tfdepth.models.dorn import build_dorn
from tfdepth.models.dorn import build_sid_classifier
from tfdepth.models.dpt import build_dpt
from tfdepth.models.eigen import build_eigen2014
from tfdepth.models.eigen import build_eigen2015
from tfdepth.models.fastdepth import build_fastdepth
from tfdepth.models.fcrn import build_fcrn
from tfdepth.models.monodepth2 import build_monodepth2_depth_net
from tfdepth.models.monodepth2 import build_monodepth2_pose_net
from tfdepth.models.motion_net import build_motion_net  # Li et al. 2021 (issue 6)
from tfdepth.models.motion_net import PerVideoIntrinsics

MODEL_BUILDERS = {
    "fastdepth": build_fastdepth,
    "monodepth2_depth": build_monodepth2_depth_net,
    "monodepth2_pose": build_monodepth2_pose_net,
    "fcrn": build_fcrn,
    "dorn": build_dorn,
    "sid_classifier": build_sid_classifier,
    "eigen2014": build_eigen2014,
    "eigen2015": build_eigen2015,
    "dpt": build_dpt,
    "resnet_encoder": build_resnet_encoder,
    "mobilenet_v1_encoder": build_mobilenet_v1_encoder,
    "mobilenet_v2_encoder": build_mobilenet_v2_encoder,
    "motion_net": build_motion_net,
}


def get_model(name, /, **kwargs):
  """Builds the model registered as ``name`` with ``kwargs`` passed to its builder.

  Raises:
    ConfigError: if ``name`` is not a key of :data:`MODEL_BUILDERS`.
  """
  if not isinstance(name, str) or name not in MODEL_BUILDERS:
    raise ConfigError(f"unknown model {name!r}; expected one of {sorted(MODEL_BUILDERS)}")
  return MODEL_BUILDERS[name](**kwargs)


__all__ = [
    "MODEL_BUILDERS", "get_model", "build_fastdepth", "build_mobilenet_v1_encoder",
    "build_mobilenet_v2_encoder", "build_resnet_encoder", "build_monodepth2_depth_net",
    "build_monodepth2_pose_net", "build_fcrn", "build_dorn", "build_sid_classifier",
    "build_eigen2014", "build_eigen2015", "build_dpt", "synchronize_batchnorm",
    "PerVideoIntrinsics",
]
