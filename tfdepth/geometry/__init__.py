"""Camera geometry for depth estimation: intrinsics, poses, projection, sampling, view synthesis.

Conventions (the single place they are written down in code; `docs/DESIGN.md` is the contract):

* Layout NHWC. The batch size may be unknown (`None`); every op here uses `tf.shape` for it and runs
  eagerly, inside `tf.function` and under `jit_compile=True`.
* Pixel coordinates `(u, v)`: u is the column (x, right), v the row (y, down), stacked as
  `(..., 2)` in that order. **Integer values are pixel centres**: u = 0 is the centre of the
  leftmost pixel, the image covers [-0.5, W - 0.5] × [-0.5, H - 0.5], and
  `pixel_grid(H, W)[v, u] = (u, v)`.
* Camera frame: x right, y down, z forward. **Depth is z-depth in metres** (not distance along the
  ray), `(B, H, W, 1)` float32, 0 = invalid in ground truth. **Disparity** means inverse depth 1/z
  (1/m) unless a function says it is Monodepth2's sigmoid output (`disp_to_depth` /
  `depth_to_disp` convert that one, with min/max depth 0.1/100 m).
* Intrinsics K `(B, 3, 3)` float32 in **pixels of the resolution the tensor has**, last row
  [0, 0, 1]. At pyramid scale s, `K_s` has fx, fy, cx, cy divided by 2^s (`intrinsics_pyramid`,
  Monodepth2). Resizing/flipping K has a `pixel_centers="integer"|"monodepth2"` option: exact for
  integer pixel centres (u -> (u + 0.5)·s - 0.5, u -> W - 1 - u) or Monodepth2's corner-origin rule
  (u -> u·s, u -> W - u). Monodepth2's KITTI K (`KITTI_NORMALIZED_INTRINSICS` times W, H) puts
  cx = 0.5·W, half a pixel right of the centre (W - 1)/2 — keep it when matching Monodepth2.
* Poses `(B, 4, 4)` = [[R, t], [0, 1]] act on homogeneous column vectors and are **named by
  direction**: `a_from_b` maps points in frame b to frame a, `p_a = a_from_b @ p_b`;
  `compose_poses(a_from_b, b_from_c) = a_from_c`. Angles in radians, translations in metres.
  Axis-angle rotations follow Monodepth2 (angle |v|, axis v / (|v| + 1e-7)); Euler angles follow
  Li et al. 2021 (R = Rx·Ry·Rz).
* Projection divides by (z + 1e-7) (Monodepth2). Sampling is bilinear with border padding (the
  position clamped to [0, W - 1] × [0, H - 1]) and samples at exactly (u, v): an identity warp
  returns the source (unlike PyTorch >= 1.3's `align_corners=False` default). `bilinear_sample`'s
  `valid` is exactly "inside [0, W - 1] × [0, H - 1]"; `warp_image` allows 1e-2 px of float32
  round-off slack (`WARP_VALID_TOLERANCE`) and also requires the point in front of the source
  camera.
* Products with K and poses are explicit float32 multiply-adds, never `matmul`/`einsum`, which run
  in TF32 on Ampere+ GPUs by default (relative error up to 2^-11: tenths of a pixel at u ~ 1000).
* Masks are float32 `(B, H, W, 1)` in {0, 1}.

Modules: `camera` (pixel grid, backproject, transform, project, bilinear_sample, warp_image),
`pose`, `intrinsics`, `discretization` (DORN bins), `pointcloud` (numpy clouds, PLY files).
"""

from tfdepth.geometry.intrinsics import (
    KITTI_NORMALIZED_INTRINSICS,
    MONODEPTH2_MAX_DEPTH,
    MONODEPTH2_MIN_DEPTH,
    PIXEL_CENTERS_INTEGER,
    PIXEL_CENTERS_MONODEPTH2,
    crop_intrinsics,
    denormalize_intrinsics,
    depth_to_disp,
    disp_to_depth,
    flip_intrinsics_horizontal,
    intrinsics_pyramid,
    invert_intrinsics,
    make_intrinsics,
    normalize_intrinsics,
    resize_intrinsics,
    scale_intrinsics,
    split_intrinsics,
    validate_intrinsics,
)
from tfdepth.geometry.pose import (
    AXIS_ANGLE_EPS,
    axis_angle_to_matrix,
    compose_poses,
    euler_to_matrix,
    identity_pose,
    invert_pose,
    matrix_to_axis_angle,
    pose_from_axis_angle_translation,
    pose_from_rotation_translation,
)
from tfdepth.geometry.camera import (
    MIN_SOURCE_Z,
    WARP_VALID_TOLERANCE,
    PROJECTION_EPS,
    backproject,
    bilinear_sample,
    pixel_grid,
    project,
    reproject_coords,
    transform_points,
    warp_image,
)
from tfdepth.geometry.discretization import (
    DORN_SHIFTED_ALPHA,
    bin_centres,
    bin_to_depth,
    depth_to_bin,
    expected_depth,
    ordinal_labels,
    ordinal_to_depth,
    sid_edges,
    uniform_edges,
)
from tfdepth.geometry.pointcloud import depth_to_point_cloud, read_ply, write_ply

__all__ = [
    "AXIS_ANGLE_EPS", "DORN_SHIFTED_ALPHA", "KITTI_NORMALIZED_INTRINSICS", "MIN_SOURCE_Z",
    "MONODEPTH2_MAX_DEPTH", "MONODEPTH2_MIN_DEPTH", "PIXEL_CENTERS_INTEGER",
    "PIXEL_CENTERS_MONODEPTH2", "PROJECTION_EPS", "WARP_VALID_TOLERANCE",
    "axis_angle_to_matrix", "backproject", "bilinear_sample", "bin_centres", "bin_to_depth",
    "compose_poses", "crop_intrinsics", "denormalize_intrinsics", "depth_to_bin", "depth_to_disp",
    "depth_to_point_cloud", "disp_to_depth", "euler_to_matrix", "expected_depth",
    "flip_intrinsics_horizontal", "identity_pose", "intrinsics_pyramid", "invert_intrinsics",
    "invert_pose", "make_intrinsics", "matrix_to_axis_angle", "normalize_intrinsics",
    "ordinal_labels", "ordinal_to_depth", "pixel_grid", "pose_from_axis_angle_translation",
    "pose_from_rotation_translation", "project", "read_ply", "reproject_coords",
    "resize_intrinsics", "scale_intrinsics", "sid_edges", "split_intrinsics", "transform_points",
    "uniform_edges", "validate_intrinsics", "warp_image", "write_ply",
]
