"""tf.data pipelines: adapters to common elements, joint augmentation, batching.

Common supervised element: `{"image": (H, W, 3) float32 [0, 1], "depth": (H, W, 1) float32 metres
(0 = invalid), "intrinsics": (3, 3) float32 pixels}`; video element: `{"frames": (3, H, W, 3)
float32 [0, 1], "intrinsics", ...}`. See `tfdepth.data.adapters`, `tfdepth.data.augment` and
`tfdepth.data.pipeline`.
"""

from tfdepth.data.adapters import ADAPTERS
from tfdepth.data.adapters import get_adapter
from tfdepth.data.adapters import sanitize_depth
from tfdepth.data.adapters import synthetic_world_to_supervised
from tfdepth.data.adapters import synthetic_world_to_video
from tfdepth.data.adapters import validate_supervised_element
from tfdepth.data.augment import augment_supervised
from tfdepth.data.augment import crop
from tfdepth.data.augment import flip_horizontal
from tfdepth.data.augment import random_color_jitter
from tfdepth.data.augment import resize
from tfdepth.data.pipeline import make_supervised_dataset
from tfdepth.data.pipeline import make_video_dataset

__all__ = [
    "ADAPTERS", "get_adapter", "sanitize_depth", "synthetic_world_to_supervised",
    "synthetic_world_to_video", "validate_supervised_element", "augment_supervised", "crop",
    "flip_horizontal", "random_color_jitter", "resize", "make_supervised_dataset",
    "make_video_dataset",
]
