"""Vectorised NumPy ray caster of the procedural synthetic world.

Geometry is analytic: infinite planes (road, floor, walls, ceiling) and boxes rotated about the
vertical axis (buildings, sidewalks, cars, poles, furniture). Every pixel casts one ray through its
centre (integer pixel coordinates are pixel centres, as in tfdepth's design contract); there are no
per-pixel Python loops: boxes are tested one at a time, each only against the pixels inside the
screen rectangle that bounds its projection.

Conventions (the same as tfdepth's, see docs/DESIGN.md):
  * camera frame: x right, y down, z forward; the world frame uses the same axes with the ground at
    Y = 0 (so "up" is -Y);
  * `world_from_camera` is a 4x4 matrix acting on homogeneous column vectors;
  * depth is z-depth in metres (the ray parameter of d = K^-1 [u, v, 1]^T, whose z component is 1).

Textures are procedural functions of coordinates fixed to each surface (a moving car carries its
texture with it), band-limited to the pixel footprint so that a rendered frame is an alias-free
sample of a smooth signal and bilinear warping between frames is photometrically consistent. The
footprint is computed from ray differentials (Igehy, "Tracing ray differentials", SIGGRAPH 1999) and
octaves of value noise (Perlin, "An image synthesizer", SIGGRAPH 1985) are faded out below the
Nyquist limit, as in frequency-clamped procedural texturing (Ebert et al., "Texturing and Modeling:
A Procedural Approach", ch. 2). Shading is Lambertian with one directional light plus ambient, so a
surface point has the same colour in every frame.
"""

import dataclasses

import numpy as np

# Rays hit nothing closer than this (metres): the camera's near plane.
NEAR_PLANE_M = 0.05
# Smallest |cos(angle between ray and surface normal)| used in the footprint formula; below it the
# footprint along the surface is treated as that of a 1.15 deg grazing angle.
FOOTPRINT_MIN_COS = 0.02
# A texture component of wavelength lam is kept fully when lam >= FADE_HI * footprint and removed
# when lam <= FADE_LO * footprint (Nyquist: 2 samples per wavelength, doubled for bilinear warps).
FADE_LO = 2.0
FADE_HI = 4.0
# Amplitude ratio between successive octaves of "rough" surface grain (asphalt, plaster): closer
# to 1 than fBm's usual 0.5 so that fine scales keep visible contrast (photometric losses need
# gradients at the pixel scale).
ROUGH_GAIN = 0.75
# fbm evaluates an octave on the subset of pixels where it is not faded out when that subset is
# smaller than this fraction (gathering costs about as much as half an evaluation).
SUBSET_FRACTION = 0.6
# Margin (pixels) added around a box's projected bounding rectangle before ray testing it.
RECT_MARGIN_PX = 1
# Divisor turning uint32 hashes into floats in [0, 1).
_UINT32_RANGE = 4294967296.0

# Material ids (one procedural texture each).
MAT_ASPHALT = 0
MAT_SIDEWALK = 1
MAT_BRICK = 2
MAT_PLASTER = 3
MAT_CAR_BODY = 4
MAT_CAR_CABIN = 5
MAT_POLE = 6
MAT_SIGN = 7
MAT_WOOD_FLOOR = 8
MAT_TILE_FLOOR = 9
MAT_WALL = 10
MAT_CEILING = 11
MAT_WOOD = 12
MAT_FABRIC = 13
MAT_POSTER = 14
MAT_FOLIAGE = 15
NUM_MATERIALS = 16


@dataclasses.dataclass
class Boxes:
  """Boxes rotated about the vertical (world Y) axis, moving with constant velocity.

  Attributes:
    center: (N, 3) float64 world position of the box centre at time 0 (the centre frame), metres.
    half: (N, 3) float64 half extents along the box's local x, y, z axes, metres.
    yaw: (N,) float64 rotation about world Y, radians (local z maps to (sin yaw, 0, cos yaw)).
    velocity: (N, 3) float64 world velocity, metres per frame (0 for static boxes).
    material: (N,) int material id (MAT_*).
    label: (N,) uint8 Cityscapes label id.
    seed: (N,) uint32 texture seed.
    color: (N, 3) float32 base albedo in [0, 1].
  """
  center: np.ndarray
  half: np.ndarray
  yaw: np.ndarray
  velocity: np.ndarray
  material: np.ndarray
  label: np.ndarray
  seed: np.ndarray
  color: np.ndarray

  def __len__(self):
    return self.center.shape[0]


@dataclasses.dataclass
class Planes:
  """Infinite one-sided planes {x : normal . x = offset}, visible from the side `normal` points to.

  Attributes:
    normal: (M, 3) float64 unit normals (world).
    offset: (M,) float64 plane offsets, metres.
    axis_a: (M, 3) float64 first in-plane texture axis (unit, world).
    axis_b: (M, 3) float64 second in-plane texture axis (unit, world).
    material, label, seed, color: as in `Boxes`.
    param: (M,) float64 material parameter (asphalt: |X| of the solid edge lines, metres).
  """
  normal: np.ndarray
  offset: np.ndarray
  axis_a: np.ndarray
  axis_b: np.ndarray
  material: np.ndarray
  label: np.ndarray
  seed: np.ndarray
  color: np.ndarray
  param: np.ndarray

  def __len__(self):
    return self.normal.shape[0]


@dataclasses.dataclass
class Scene:
  """A static-plus-moving world and its lighting.

  Attributes:
    planes: `Planes`.
    boxes: `Boxes`.
    sun: (3,) float64 unit world direction pointing towards the light.
    ambient: ambient light intensity (albedo multiplier).
    sun_strength: directional light intensity.
    max_depth: z-depth (metres) beyond which ground-truth depth is invalid (0).
    sky_seed: texture seed of the sky.
    sky_label: label of rays that hit nothing.
  """
  planes: Planes
  boxes: Boxes
  sun: np.ndarray
  ambient: float
  sun_strength: float
  max_depth: float
  sky_seed: int
  sky_label: int


def rot_y(angle):
  """(3, 3) rotation about the Y (down) axis by `angle` radians: z -> (sin, 0, cos)."""
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(angle):
  """(3, 3) rotation about the X axis by `angle` radians: z -> (0, -sin, cos), i.e. pitch up."""
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(angle):
  """(3, 3) rotation about the Z (optical) axis by `angle` radians (roll)."""
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def pose_matrix(position, yaw, pitch=0.0, roll=0.0):
  """(4, 4) float64 world_from_camera for a camera at `position` with yaw, pitch, roll (radians).

  R = R_y(yaw) @ R_x(pitch) @ R_z(roll): yaw turns right, pitch > 0 looks up.
  """
  m = np.eye(4)
  m[:3, :3] = rot_y(yaw) @ rot_x(pitch) @ rot_z(roll)
  m[:3, 3] = position
  return m


# ----------------------------------------------------------------------------------------------
# Procedural texture primitives (float32, vectorised).
# ----------------------------------------------------------------------------------------------


# Multipliers of the lattice hash (odd 32-bit constants; MurmurHash2's mixing constant 0x5bd1e995).
_HASH_PX = np.uint32(0x8DA6B343)
_HASH_PY = np.uint32(0xD8163841)
_HASH_PS = np.uint32(0xCB1AB31F)
_HASH_MIX = np.uint32(0x5BD1E995)


def _mix_hash(h):
  """Finalises uint32 hashes (xor-shift / multiply) into float32 in [0, 1)."""
  h ^= h >> np.uint32(13)
  h *= _HASH_MIX
  h ^= h >> np.uint32(15)
  return h.astype(np.float32) * np.float32(1.0 / _UINT32_RANGE)


def _to_u32(x):
  """Integer-valued float array -> uint32 (two's complement wrap for negatives)."""
  return x.astype(np.int32).view(np.uint32)


def _hash2(ix, iy, seed):
  """Integer lattice hash of integer-valued (float or int) arrays -> float32 in [0, 1)."""
  return _mix_hash(_to_u32(ix) * _HASH_PX ^ _to_u32(iy) * _HASH_PY ^ seed * _HASH_PS)


def _value_noise(x, y, seed):
  """2-D value noise in [0, 1] with smoothstep interpolation; lattice spacing 1."""
  fx = np.floor(x)
  fy = np.floor(y)
  tx = x - fx
  ty = y - fy
  tx = tx * tx * (3.0 - 2.0 * tx)
  ty = ty * ty * (3.0 - 2.0 * ty)
  hx0 = _to_u32(fx) * _HASH_PX
  hx1 = hx0 + _HASH_PX  # (ix + 1) * PX mod 2^32
  hy0 = _to_u32(fy) * _HASH_PY ^ seed * _HASH_PS
  hy1 = (_to_u32(fy) + np.uint32(1)) * _HASH_PY ^ seed * _HASH_PS
  v00 = _mix_hash(hx0 ^ hy0)
  v10 = _mix_hash(hx1 ^ hy0)
  v01 = _mix_hash(hx0 ^ hy1)
  v11 = _mix_hash(hx1 ^ hy1)
  a = v00 + (v10 - v00) * tx
  b = v01 + (v11 - v01) * tx
  return a + (b - a) * ty


def _fade(wavelength, footprint):
  """Weight in [0, 1] of a component of `wavelength` given the pixel footprint (same units)."""
  return np.clip((wavelength / footprint - FADE_LO) * (1.0 / (FADE_HI - FADE_LO)), 0.0, 1.0)


def fbm(x, y, seed, footprint, base_wavelength, octaves, gain=0.5, stretch=1.0):
  """Band-limited fractal value noise, zero mean, roughly in [-1, 1].

  Args:
    x, y: (P,) float32 surface coordinates, metres.
    seed: (P,) uint32 per-pixel seed.
    footprint: (P,) float32 pixel footprint on the surface (metres), or a pair (fp_x, fp_y) of
      footprints along x and y (anisotropic, e.g. a road seen at a grazing angle).
    base_wavelength: wavelength of the first octave, metres (each next octave halves it).
    octaves: number of octaves.
    gain: amplitude ratio between successive octaves.
    stretch: x wavelengths are `stretch` times the y ones (wood grain, streaks).
  Returns:
    (P,) float32.
  """
  if isinstance(footprint, tuple):
    fpx, fpy = footprint
  else:
    fpx = fpy = footprint
  out = np.zeros(x.shape, np.float32)
  amp = 1.0
  norm = 0.0
  lam = float(base_wavelength)
  fpx_min = float(fpx.min()) if fpx.size else 1.0
  fpy_min = float(fpy.min()) if fpy.size else 1.0
  for o in range(octaves):
    norm += amp
    # Skip octaves that are faded out on every pixel.
    if lam * stretch > FADE_LO * fpx_min and lam > FADE_LO * fpy_min:
      w = np.minimum(_fade(lam * stretch, fpx), _fade(lam, fpy))
      sx = np.float32(1.0 / (lam * stretch))
      sy = np.float32(1.0 / lam)
      so = np.uint32(977 * (o + 1))
      live = np.flatnonzero(w > 0.0)
      if live.size > SUBSET_FRACTION * w.size:
        out += np.float32(2.0 * amp) * w * (_value_noise(x * sx, y * sy, seed + so) - 0.5)
      elif live.size:  # Fine octaves: evaluate only where they are not faded out.
        n = _value_noise(x[live] * sx, y[live] * sy, seed[live] + so)
        out[live] += np.float32(2.0 * amp) * w[live] * (n - 0.5)
    amp *= gain
    lam *= 0.5
  return out / np.float32(norm)


def _smoothstep(e0, e1, x):
  t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)


def lines(x, period, width, footprint, offset=0.0):
  """Box-filtered coverage in [0, 1] of lines of `width` centred at x = offset + k * period."""
  xs = x - np.float32(offset)
  dist = np.abs(xs - np.float32(period) * np.round(xs * np.float32(1.0 / period)))
  fp = np.maximum(footprint, 1e-6)
  cov = 1.0 - _smoothstep(0.5 * width - 0.5 * fp, 0.5 * width + 0.5 * fp, dist)
  alpha = _fade(period, fp)
  return alpha * cov + (1.0 - alpha) * np.float32(width / period)


def band(x, lo, hi, footprint):
  """Box-filtered coverage in [0, 1] of the interval lo <= x <= hi (arrays or scalars)."""
  fp = np.maximum(footprint, 1e-6)
  a = _smoothstep(lo - 0.5 * fp, lo + 0.5 * fp, x)
  b = 1.0 - _smoothstep(hi - 0.5 * fp, hi + 0.5 * fp, x)
  return a * b


def _cell_tint(x, y, period_x, period_y, seed, footprint, row_shift=0.0):
  """Per-cell random value in [-0.5, 0.5] (bricks, tiles, planks), faded where cells alias."""
  row = np.floor(y * np.float32(1.0 / period_y))
  xs = x + np.float32(row_shift * period_x) * (row.astype(np.int64) % 2).astype(np.float32)
  col = np.floor(xs * np.float32(1.0 / period_x))
  alpha = _fade(min(period_x, period_y), footprint)
  return alpha * (_hash2(col, row, seed) - 0.5)


def _mix(c0, c1, t):
  """Blend (P,3) colours: c0 + (c1 - c0) * t[:, None]."""
  return c0 + (c1 - c0) * t[:, None]


def _gray(v):
  return np.repeat(np.asarray(v, np.float32)[:, None], 3, axis=1)


def material_albedo(mat, a, b, fpa, fpb, seed, color, face, size, param):
  """Albedo (P, 3) float32 in [0, 1] of material `mat` at surface coordinates (a, b).

  Args:
    mat: material id (MAT_*).
    a, b: (P,) float32 surface coordinates, metres, fixed to the surface. On box faces they start
      at the box corner; on vertical faces b grows downwards (world Y), so `size_b - b` is the
      height above the face's bottom edge.
    fpa, fpb: (P,) float32 pixel footprint along a and b, metres.
    seed: (P,) uint32 per-object seed.
    color: (P, 3) float32 per-object base colour.
    face: (P,) int local axis of the box face (0: x, 1: y (top/bottom), 2: z); -1 on planes.
    size: (P, 2) float32 extent of the face along a and b, metres (0 on planes).
    param: (P,) float32 material parameter.

  The per-material recipes (colours, noise amplitudes, brick / tile / plank sizes in metres) are
  appearance choices, not taken from a paper; the only constraints they serve are visible contrast
  at every scale (photometric losses need gradients) and band-limiting (see `fbm`, `lines`).
  """
  base = _base_albedo(mat, a, b, fpa, fpb, seed, color, face, size, param)
  if mat == MAT_ASPHALT:  # streaks along the road (b = world Z)
    detail = fbm(b, a, seed + np.uint32(101), (fpb, fpa), DETAIL_WAVELENGTH_M, DETAIL_OCTAVES,
                 gain=DETAIL_GAIN, stretch=DETAIL_ROAD_STRETCH)
  elif mat in (MAT_BRICK, MAT_PLASTER):  # horizontal weathering streaks on facades
    detail = fbm(a, b, seed + np.uint32(101), (fpa, fpb), DETAIL_WAVELENGTH_M, DETAIL_OCTAVES,
                 gain=DETAIL_GAIN, stretch=DETAIL_FACADE_STRETCH)
  else:
    detail = fbm(a, b, seed + np.uint32(101), (fpa, fpb), DETAIL_WAVELENGTH_M, DETAIL_OCTAVES,
                 gain=DETAIL_GAIN)
  return base * (1.0 + DETAIL_AMPLITUDE * detail)[:, None]


# Pixel-scale detail multiplied into every material so that surfaces have gradients at every
# distance: octaves of 64 cm down to 2 cm with a high gain, so that whichever octave sits just above
# the fade limit still has contrast. On roads the noise is stretched 4x along the street (asphalt
# streaks), on facades 3x horizontally: at grazing angles the footprint along those axes is much
# larger, and stretching keeps the noise resolvable there instead of fading it out.
DETAIL_WAVELENGTH_M = 0.64
DETAIL_OCTAVES = 6
DETAIL_GAIN = 0.85
DETAIL_AMPLITUDE = 0.6
DETAIL_ROAD_STRETCH = 4.0
DETAIL_FACADE_STRETCH = 3.0


def _base_albedo(mat, a, b, fpa, fpb, seed, color, face, size, param):
  """Per-material albedo before the shared detail layer (see `material_albedo`)."""
  fp = (fpa, fpb)
  fpm = np.maximum(fpa, fpb)
  if mat == MAT_ASPHALT:
    g = (0.30 + 0.10 * fbm(a, b, seed, fp, 6.0, 3)
         + 0.16 * fbm(b, a, seed + 1, (fpb, fpa), 0.4, 5, gain=ROUGH_GAIN,
                      stretch=DETAIL_ROAD_STRETCH))
    col = color * (g / 0.30)[:, None]
    centre = lines(a, 1000.0, 0.15, fpa) * band(np.mod(b, 9.0), 0.0, 3.0, fpb)
    edge = np.maximum(lines(a, 1000.0, 0.12, fpa, offset=param),
                      lines(a, 1000.0, 0.12, fpa, offset=-param))
    mark = np.clip(centre + edge, 0.0, 1.0) * (0.9 + 0.1 * fbm(a, b, seed + 2, fp, 0.3, 3))
    return _mix(col, np.full_like(col, 0.82), mark)
  if mat == MAT_SIDEWALK:
    top = face == 1
    grout = np.maximum(lines(a, 0.6, 0.015, fpa), lines(b, 0.6, 0.015, fpb)) * top
    tint = _cell_tint(a, b, 0.6, 0.6, seed, fpm) * top
    g = (1.0 + 0.25 * tint + 0.15 * fbm(a, b, seed, fp, 3.0, 3)
         + 0.3 * fbm(a, b, seed + 5, fp, 0.4, 5, gain=ROUGH_GAIN) - 0.35 * grout)
    return color * g[:, None]
  if mat == MAT_BRICK:
    mortar = np.maximum(lines(b, 0.075, 0.012, fpb),
                        lines(a + 0.12 * (np.floor(b / 0.075) % 2), 0.24, 0.012, fpa)
                        * _fade(0.075, fpb))
    tint = _cell_tint(a, b, 0.24, 0.075, seed, fpm, row_shift=0.5)
    g = (1.0 + 0.35 * tint + 0.15 * fbm(a, b, seed, fp, 3.0, 3)
         + 0.3 * fbm(a, b, seed + 5, fp, 0.6, 5, gain=ROUGH_GAIN))
    col = _mix(color * g[:, None], np.full_like(color, 0.75), mortar)
    return _facade_windows(col, a, b, fpa, fpb, seed, face, size)
  if mat == MAT_PLASTER:
    g = (1.0 + 0.3 * fbm(a, b, seed, fp, 4.0, 4)
         + 0.3 * fbm(a, b, seed + 5, fp, 0.5, 5, gain=ROUGH_GAIN))
    band_v = lines(size[:, 1] - b, 3.2, 0.25, fpb, offset=0.0)  # floor cornices
    col = _mix(color * g[:, None], color * 0.7, band_v)
    return _facade_windows(col, a, b, fpa, fpb, seed, face, size)
  if mat == MAT_CAR_BODY:
    side = face != 1
    g = 1.0 + 0.3 * fbm(a, b, seed, fp, 1.0, 6)
    doors = lines(a, 1.1, 0.03, fpa) * side
    bottom = band(size[:, 1] - b, -1.0, 0.15, fpb) * side
    # Chrome trim line and a soft horizontal reflection band along the body side.
    trim = lines(b, 1000.0, 0.04, fpb, offset=0.25) * side
    refl = np.exp(-((b - 0.35 * size[:, 1]) / 0.12) ** 2) * side
    col = color * (g + 0.35 * refl)[:, None]
    col = _mix(col, col * 0.35, np.clip(doors + bottom, 0.0, 1.0))
    return _mix(col, np.full_like(col, 0.8), trim)
  if mat == MAT_CAR_CABIN:
    side = face != 1
    inset = 0.08
    glass = band(a, inset, size[:, 0] - inset, fpa) * band(b, inset, size[:, 1], fpb) * side
    # Glass reflects a blurred sky/street: a vertical gradient plus streaks.
    refl = (0.15 + 0.25 * np.clip(1.0 - b / np.maximum(size[:, 1], 1e-3), 0.0, 1.0)
            + 0.18 * fbm(a, b, seed + 3, fp, 1.2, 5, stretch=0.3))
    g = 1.0 + 0.12 * fbm(a, b, seed, fp, 1.0, 5)
    return _mix(color * g[:, None], _gray(refl) * np.float32([0.9, 1.0, 1.1]), glass)
  if mat == MAT_POLE:
    g = 1.0 + 0.25 * fbm(a, b, seed, fp, 1.0, 5, stretch=0.15)
    return color * g[:, None]
  if mat == MAT_SIGN:
    inner = band(a, 0.05, size[:, 0] - 0.05, fpa) * band(b, 0.05, size[:, 1] - 0.05, fpb)
    g = 1.0 + 0.1 * fbm(a, b, seed, fp, 0.3, 3)
    glyph = lines(a, 0.15, 0.04, fpa) * band(b, 0.2, 0.4, fpb)
    col = _mix(np.full_like(color, 0.9), color * g[:, None], inner)
    return _mix(col, np.full_like(color, 0.95), glyph * inner)
  if mat == MAT_WOOD_FLOOR:
    plank_w = 0.15
    seams = np.maximum(lines(b, plank_w, 0.006, fpb),
                       lines(a + 0.6 * (np.floor(b / plank_w) % 3), 1.2, 0.006, fpa)
                       * _fade(plank_w, fpb))
    tint = _cell_tint(a, b, 1.2, plank_w, seed, fpm, row_shift=0.33)
    grain = fbm(a, b, seed, fp, 0.6, 5, stretch=6.0)
    g = 1.0 + 0.3 * tint + 0.25 * grain + 0.1 * fbm(a, b, seed + 9, fp, 2.0, 3)
    return _mix(color * g[:, None], color * 0.45, seams)
  if mat == MAT_TILE_FLOOR:
    grout = np.maximum(lines(a, 0.4, 0.01, fpa), lines(b, 0.4, 0.01, fpb))
    tint = _cell_tint(a, b, 0.4, 0.4, seed, fpm)
    g = 1.0 + 0.3 * tint + 0.15 * fbm(a, b, seed, fp, 0.4, 5)
    return _mix(color * g[:, None], color * 0.55, grout)
  if mat == MAT_WALL:
    g = 1.0 + 0.15 * fbm(a, b, seed, fp, 2.0, 3) + 0.2 * fbm(a, b, seed + 6, fp, 0.3, 5,
                                                             gain=ROUGH_GAIN)
    stripes = lines(a, 0.3, 0.08, fpa) * 0.12
    skirting = band(b, -1.0, 0.1, fpb)  # b = height above the floor on walls
    col = color * (g - stripes)[:, None]
    return _mix(col, col * 0.6, skirting)
  if mat == MAT_CEILING:
    g = 1.0 + 0.15 * fbm(a, b, seed, fp, 2.0, 7)
    panels = np.maximum(lines(a, 0.6, 0.02, fpa), lines(b, 0.6, 0.02, fpb))
    return _mix(color * g[:, None], color * 0.75, panels)
  if mat == MAT_WOOD:
    grain = fbm(a, b, seed, fp, 0.4, 5, stretch=5.0)
    g = 1.0 + 0.3 * grain + 0.15 * fbm(a, b, seed + 4, fp, 1.5, 3)
    return color * g[:, None]
  if mat == MAT_FABRIC:
    weave = 0.5 * (lines(a, 0.02, 0.008, fpa) + lines(b, 0.02, 0.008, fpb))
    g = 1.0 + 0.3 * fbm(a, b, seed, fp, 0.8, 6) - 0.2 * weave
    return color * g[:, None]
  if mat == MAT_POSTER:
    r = fbm(a, b, seed, fp, 0.5, 5)
    gg = fbm(a, b, seed + 1, fp, 0.4, 5)
    bb = fbm(a, b, seed + 2, fp, 0.3, 5)
    frame = 1.0 - band(a, 0.03, size[:, 0] - 0.03, fpa) * band(b, 0.03, size[:, 1] - 0.03, fpb)
    col = np.clip(color + 0.6 * np.stack([r, gg, bb], axis=1), 0.0, 1.0)
    return _mix(col, np.full_like(col, 0.15), frame)
  if mat == MAT_FOLIAGE:
    g = 1.0 + 0.45 * fbm(a, b, seed, fp, 1.0, 6)
    return color * g[:, None]
  raise ValueError(f"unknown material id {mat!r}; expected 0..{NUM_MATERIALS - 1}")


# Facade windows (metres): storey height, window width/height, sill height, horizontal period.
STOREY_M = 3.2
WINDOW_W_M = 1.3
WINDOW_H_M = 1.6
SILL_M = 0.9
WINDOW_PERIOD_M = 3.0


def _facade_windows(col, a, b, fpa, fpb, seed, face, size):
  """Overlays a grid of framed windows on the vertical faces of a building."""
  vertical = face != 1
  height = size[:, 1] - b  # above the ground
  wx = band(np.mod(a, WINDOW_PERIOD_M), 0.5 * (WINDOW_PERIOD_M - WINDOW_W_M),
            0.5 * (WINDOW_PERIOD_M + WINDOW_W_M), fpa)
  wy = band(np.mod(height, STOREY_M), SILL_M, SILL_M + WINDOW_H_M, fpb)
  # Faded to the window coverage ratio where the grid itself is below the footprint.
  alpha = _fade(STOREY_M, np.maximum(fpa, fpb))
  ratio = (WINDOW_W_M / WINDOW_PERIOD_M) * (WINDOW_H_M / STOREY_M)
  inside_face = band(a, 0.5, size[:, 0] - 0.5, fpa) * band(height, 2.0, size[:, 1] - 0.8, fpb)
  win = (alpha * wx * wy + (1.0 - alpha) * ratio) * inside_face * vertical
  frame_x = band(np.mod(a, WINDOW_PERIOD_M), 0.5 * (WINDOW_PERIOD_M - WINDOW_W_M) - 0.08,
                 0.5 * (WINDOW_PERIOD_M + WINDOW_W_M) + 0.08, fpa)
  frame_y = band(np.mod(height, STOREY_M), SILL_M - 0.08, SILL_M + WINDOW_H_M + 0.08, fpb)
  frame = np.clip(alpha * frame_x * frame_y * inside_face * vertical - win, 0.0, 1.0)
  cell_x = np.floor(a / WINDOW_PERIOD_M)
  cell_y = np.floor(height / STOREY_M)
  lit = _hash2(cell_x, cell_y, seed + np.uint32(31))
  glass = np.stack([0.10 + 0.25 * lit, 0.13 + 0.22 * lit, 0.17 + 0.15 * lit], axis=1)
  glass = glass * (1.0 + 0.3 * fbm(a, b, seed + 7, np.maximum(fpa, fpb), 1.5, 3))[:, None]
  col = _mix(col, np.full_like(col, 0.85), frame)
  return _mix(col, glass.astype(np.float32), win)


def sky_color(dirs, seed):
  """Sky radiance (P, 3) float32 from world ray directions (P, 3): gradient plus soft clouds.

  A function of direction only, so it is consistent under camera rotation and translation.
  """
  dn = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
  up = np.clip(-dn[:, 1], -1.0, 1.0).astype(np.float32)
  horizon = np.float32([0.78, 0.84, 0.90])
  zenith = np.float32([0.35, 0.55, 0.85])
  t = np.clip(up * 2.5, 0.0, 1.0)
  base = horizon + (zenith - horizon) * t[:, None]
  # Clouds on the plane 1 unit above the camera (coordinates of the direction scaled by 1/up).
  inv = 1.0 / np.maximum(up, 0.05)
  cx = (dn[:, 0] * inv).astype(np.float32)
  cz = (dn[:, 2] * inv).astype(np.float32)
  seeds = np.full(cx.shape, np.uint32(seed), np.uint32)
  fp = np.full(cx.shape, np.float32(0.002), np.float32) * inv.astype(np.float32) ** 2
  c = np.clip(fbm(cx, cz, seeds, fp, 1.5, 5) * 2.0 + 0.1, 0.0, 1.0)
  return base + (np.float32(0.97) - base) * (0.8 * c)[:, None]


# ----------------------------------------------------------------------------------------------
# Ray casting.
# ----------------------------------------------------------------------------------------------


def box_frames(boxes, time):
  """Box rotations (N, 3, 3) world_from_local and centres (N, 3) at `time` (frames)."""
  c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
  rot = np.zeros((len(boxes), 3, 3))
  rot[:, 0, 0] = c
  rot[:, 0, 2] = s
  rot[:, 1, 1] = 1.0
  rot[:, 2, 0] = -s
  rot[:, 2, 2] = c
  return rot, boxes.center + boxes.velocity * time


_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                         np.float64)
_EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8)
          if np.sum(_CORNER_SIGNS[i] != _CORNER_SIGNS[j]) == 1]


def _screen_rect(corners_cam, k, height, width):
  """Pixel rectangle (v0, v1, u0, u1), end-exclusive, bounding a convex box seen by the camera.

  corners_cam: (8, 3) box corners in camera coordinates. The visible part of the box is its
  intersection with {z >= NEAR_PLANE_M}; the vertices of that polytope are the corners in front of
  the near plane plus the crossings of box edges with it. Returns None if nothing is in front.
  """
  z = corners_cam[:, 2]
  front = z >= NEAR_PLANE_M
  if not front.any():
    return None
  pts = [corners_cam[front]]
  if not front.all():
    for i, j in _EDGES:
      if front[i] != front[j]:
        w = (NEAR_PLANE_M - z[i]) / (z[j] - z[i])
        pts.append((corners_cam[i] + w * (corners_cam[j] - corners_cam[i]))[None])
  p = np.concatenate(pts, axis=0)
  uv = p @ k.T
  return _rect_from_uv(uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2], height, width)


def _rect_from_uv(u, v, height, width):
  u0 = max(int(np.floor(u.min())) - RECT_MARGIN_PX, 0)
  u1 = min(int(np.ceil(u.max())) + RECT_MARGIN_PX + 1, width)
  v0 = max(int(np.floor(v.min())) - RECT_MARGIN_PX, 0)
  v1 = min(int(np.ceil(v.max())) + RECT_MARGIN_PX + 1, height)
  if u0 >= u1 or v0 >= v1:
    return None
  return v0, v1, u0, u1


def _screen_rects(boxes, rots, centres, world_from_camera, k, height, width):
  """Screen rectangles of all boxes (list of (v0, v1, u0, u1) or None), vectorised over boxes."""
  corners_w = np.einsum("nij,ncj->nci", rots, _CORNER_SIGNS[None] * boxes.half[:, None, :])
  corners_w = corners_w + centres[:, None, :]
  corners_c = (corners_w - world_from_camera[:3, 3]) @ world_from_camera[:3, :3]
  z = corners_c[..., 2]
  all_front = np.all(z >= NEAR_PLANE_M, axis=1)
  any_front = np.any(z >= NEAR_PLANE_M, axis=1)
  uvw = corners_c @ k.T
  with np.errstate(divide="ignore", invalid="ignore"):
    u = uvw[..., 0] / uvw[..., 2]
    v = uvw[..., 1] / uvw[..., 2]
  umin, umax = np.floor(u.min(axis=1)), np.ceil(u.max(axis=1))
  vmin, vmax = np.floor(v.min(axis=1)), np.ceil(v.max(axis=1))
  rects = []
  for i in range(len(boxes)):
    if not any_front[i]:
      rects.append(None)
    elif all_front[i]:
      if umax[i] < -RECT_MARGIN_PX or umin[i] > width + RECT_MARGIN_PX or \
         vmax[i] < -RECT_MARGIN_PX or vmin[i] > height + RECT_MARGIN_PX:
        rects.append(None)
        continue
      rects.append(_rect_from_uv(u[i], v[i], height, width))
    else:
      rects.append(_screen_rect(corners_c[i], k, height, width))
  return rects


def camera_rays(k, height, width, world_from_camera):
  """Ray directions for every pixel centre.

  Returns:
    d_cam: (H, W, 3) float64 K^-1 [u, v, 1] (z component 1, so the ray parameter is z-depth).
    d_world: (H, W, 3) float64 the same directions rotated into the world frame.
  """
  u = np.arange(width, dtype=np.float64)
  v = np.arange(height, dtype=np.float64)
  uu, vv = np.meshgrid(u, v)
  pix = np.stack([uu, vv, np.ones_like(uu)], axis=-1)
  d_cam = pix @ np.linalg.inv(k).T
  d_cam = d_cam / d_cam[..., 2:3]
  d_world = d_cam @ world_from_camera[:3, :3].T
  return d_cam, d_world


def render_view(scene, world_from_camera, k, height, width, time=0.0, shade=True):
  """Ray casts one view of `scene`.

  Args:
    scene: `Scene`.
    world_from_camera: (4, 4) float64 camera pose.
    k: (3, 3) intrinsics in pixels at (height, width), integer pixel centres.
    height, width: image size in pixels.
    time: scene time in frames (moving boxes are at center + velocity * time).
    shade: if False, skip textures and return no 'rgb' (geometry only).
  Returns:
    dict of numpy arrays:
      'rgb': (H, W, 3) float32 in [0, 1];
      'depth': (H, W) float64 z-depth in metres of the first hit (0 where nothing is hit);
      'label': (H, W) uint8 Cityscapes label id (scene.sky_label where nothing is hit);
      'normal': (H, W, 3) float32 unit normal in camera coordinates, facing the camera (0 on sky);
      'velocity': (H, W, 3) float64 world velocity (m/frame) of the hit object (0 if static);
      'moving': (H, W) bool, hit object has non-zero velocity;
      'hit': (H, W) bool, a surface was hit.
  """
  origin = world_from_camera[:3, 3]
  rot_wc = world_from_camera[:3, :3]
  _, d = camera_rays(k, height, width, world_from_camera)
  tbuf = np.full((height, width), np.inf)
  kind = np.zeros((height, width), np.int8)  # 0 none, 1 plane, 2 box
  index = np.zeros((height, width), np.int32)
  face = np.full((height, width), -1, np.int8)
  fsign = np.zeros((height, width), np.int8)

  planes = scene.planes
  for i in range(len(planes)):
    n = planes.normal[i]
    denom = d @ n
    dist = planes.offset[i] - origin @ n
    with np.errstate(divide="ignore", invalid="ignore"):
      t = dist / denom
    ok = (denom < 0.0) & (t > NEAR_PLANE_M) & (t < tbuf)
    tbuf[ok] = t[ok]
    kind[ok] = 1
    index[ok] = i

  boxes = scene.boxes
  if len(boxes):
    rots, centres = box_frames(boxes, time)
    rects = _screen_rects(boxes, rots, centres, world_from_camera, k, height, width)
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    with np.errstate(divide="ignore"):
      inv_full = (1.0 / dx, 1.0 / dy, 1.0 / dz)
    # Boxes whose yaw is a multiple of pi are axis-aligned (a box is symmetric under that turn).
    aligned = np.abs(np.sin(boxes.yaw)) < 1e-12
    for i in range(len(boxes)):
      rect = rects[i]
      if rect is None:
        continue
      v0, v1, u0, u1 = rect
      h = boxes.half[i]
      ol = rots[i].T @ (origin - centres[i])
      if aligned[i]:
        inv = [q[v0:v1, u0:u1] for q in inv_full]
        cyaw = rots[i][0, 0]
        if cyaw < 0:  # turned by pi: local x, z are -X, -Z
          inv[0] = -inv[0]
          inv[2] = -inv[2]
      else:
        c, s_ = rots[i][0, 0], rots[i][0, 2]
        sx, sz = dx[v0:v1, u0:u1], dz[v0:v1, u0:u1]
        with np.errstate(divide="ignore"):
          inv = [1.0 / (c * sx - s_ * sz), inv_full[1][v0:v1, u0:u1], 1.0 / (s_ * sx + c * sz)]
      with np.errstate(invalid="ignore"):
        ta = (-h[0] - ol[0]) * inv[0]
        tb = (h[0] - ol[0]) * inv[0]
        tn0 = np.minimum(ta, tb)
        tnear = tn0
        tfar = np.maximum(ta, tb)
        ta = (-h[1] - ol[1]) * inv[1]
        tb = (h[1] - ol[1]) * inv[1]
        tn1 = np.minimum(ta, tb)
        tnear = np.maximum(tnear, tn1)
        tfar = np.minimum(tfar, np.maximum(ta, tb))
        ta = (-h[2] - ol[2]) * inv[2]
        tb = (h[2] - ol[2]) * inv[2]
        tnear = np.maximum(tnear, np.minimum(ta, tb))
        tfar = np.minimum(tfar, np.maximum(ta, tb))
        sub_t = tbuf[v0:v1, u0:u1]
        ok = (tnear <= tfar) & (tnear > NEAR_PLANE_M) & (tnear < sub_t)
      if not ok.any():
        continue
      tk = tnear[ok]
      sub_t[ok] = tk
      kind[v0:v1, u0:u1][ok] = 2
      index[v0:v1, u0:u1][ok] = i
      ax = np.where(tn0[ok] == tk, 0, np.where(tn1[ok] == tk, 1, 2)).astype(np.int8)
      face[v0:v1, u0:u1][ok] = ax
      # The entry face's outward normal opposes the local ray direction along that axis;
      # sign(inv) == sign(direction).
      inv_ax = np.where(ax == 0, inv[0][ok], np.where(ax == 1, inv[1][ok], inv[2][ok]))
      fsign[v0:v1, u0:u1][ok] = np.where(inv_ax > 0, -1, 1)

  hit = kind > 0
  depth = np.where(hit, tbuf, 0.0)
  n_pix = height * width
  # Hit pixels, plane hits first then box hits, so that per-kind subsets are contiguous slices.
  kind_flat = kind.ravel()
  flat_pl = np.flatnonzero(kind_flat == 1)
  flat_bx = np.flatnonzero(kind_flat == 2)
  flat = np.concatenate([flat_pl, flat_bx])
  n_hit = flat.size
  pl = slice(0, flat_pl.size)
  bx = slice(flat_pl.size, n_hit)
  pi = index.ravel()[flat_pl]
  bi = index.ravel()[flat_bx]
  fi = face.ravel()[flat_bx].astype(np.intp)
  nw = np.empty((n_hit, 3))
  nw[pl] = planes.normal[pi]
  label = np.full(n_pix, scene.sky_label, np.uint8)
  label[flat_pl] = planes.label[pi]
  velocity = np.zeros((n_pix, 3))
  moving = np.zeros(n_pix, bool)
  if flat_bx.size:
    nw[bx] = rots[bi, :, fi] * fsign.ravel()[flat_bx, None]
    label[flat_bx] = boxes.label[bi]
    velocity[flat_bx] = boxes.velocity[bi]
    moving[flat_bx] = np.any(boxes.velocity != 0.0, axis=1)[bi]
  normal_c = np.zeros((n_pix, 3), np.float32)
  normal_c[flat] = nw @ rot_wc
  out = {"depth": depth, "label": label.reshape(height, width),
         "normal": normal_c.reshape(height, width, 3),
         "velocity": velocity.reshape(height, width, 3),
         "moving": moving.reshape(height, width), "hit": hit}
  if not shade:
    return out

  f_px = float(min(k[0, 0], k[1, 1]))
  dflat = d.reshape(-1, 3)[flat]
  tflat = tbuf.ravel()[flat]
  pts = origin + dflat * tflat[:, None]
  dlen = np.sqrt(np.einsum("pi,pi->p", dflat, dflat))
  dhat = dflat / dlen[:, None]
  ndot = np.maximum(np.abs(np.einsum("pi,pi->p", nw, dhat)), FOOTPRINT_MIN_COS)
  base_fp = tflat * dlen / f_px
  a = np.empty(n_hit, np.float32)
  b = np.empty(n_hit, np.float32)
  ax_a = np.empty((n_hit, 3))
  ax_b = np.empty((n_hit, 3))
  seed = np.empty(n_hit, np.uint32)
  color = np.empty((n_hit, 3), np.float32)
  mat = np.empty(n_hit, np.int32)
  size = np.zeros((n_hit, 2), np.float32)
  param = np.zeros(n_hit, np.float32)
  fflat = np.full(n_hit, -1, np.intp)

  ax_a[pl] = planes.axis_a[pi]
  ax_b[pl] = planes.axis_b[pi]
  a[pl] = np.einsum("pi,pi->p", pts[pl], ax_a[pl])
  b[pl] = np.einsum("pi,pi->p", pts[pl], ax_b[pl])
  seed[pl] = planes.seed[pi]
  color[pl] = planes.color[pi]
  mat[pl] = planes.material[pi]
  param[pl] = planes.param[pi]
  if flat_bx.size:
    rel = pts[bx] - centres[bi]
    cb = np.cos(boxes.yaw)[bi]
    sb = np.sin(boxes.yaw)[bi]
    hb = boxes.half[bi]
    lx = cb * rel[:, 0] - sb * rel[:, 2] + hb[:, 0]
    ly = rel[:, 1] + hb[:, 1]
    lz = sb * rel[:, 0] + cb * rel[:, 2] + hb[:, 2]
    # In-face axes per face: x-face -> (z, y), y-face -> (x, z), z-face -> (x, y).
    fx_face = (fi == 0)
    fy_face = (fi == 1)
    a[bx] = np.where(fx_face, lz, lx)
    b[bx] = np.where(fy_face, lz, ly)
    zero = np.zeros_like(cb)
    col_x = np.stack([cb, zero, -sb], axis=1)  # world direction of local x
    col_z = np.stack([sb, zero, cb], axis=1)   # world direction of local z
    ax_a[bx] = np.where(fx_face[:, None], col_z, col_x)
    ax_b[bx] = np.where(fy_face[:, None], col_z, np.array([0.0, 1.0, 0.0]))
    size[bx, 0] = 2.0 * np.where(fx_face, hb[:, 2], hb[:, 0])
    size[bx, 1] = 2.0 * np.where(fy_face, hb[:, 2], hb[:, 1])
    seed[bx] = boxes.seed[bi]
    color[bx] = boxes.color[bi]
    mat[bx] = boxes.material[bi]
    fflat_bx = fi
  # Ray-differential footprint along each texture axis (see module docstring):
  # fp_a = (L / f) * sqrt(1 + ((a . d) / (n . d))^2).
  ra = np.einsum("pi,pi->p", ax_a, dhat) / ndot
  rb = np.einsum("pi,pi->p", ax_b, dhat) / ndot
  fpa = (base_fp * np.sqrt(1.0 + ra * ra)).astype(np.float32)
  fpb = (base_fp * np.sqrt(1.0 + rb * rb)).astype(np.float32)

  albedo = np.empty((n_hit, 3), np.float32)
  order = np.argsort(mat, kind="stable")
  bounds = np.flatnonzero(np.diff(mat[order])) + 1
  for grp in np.split(order, bounds):
    if grp.size == 0:
      continue
    albedo[grp] = material_albedo(int(mat[grp[0]]), a[grp], b[grp], fpa[grp], fpb[grp],
                                  seed[grp], color[grp], fflat[grp], size[grp], param[grp])
  lambert = np.maximum(nw @ scene.sun, 0.0).astype(np.float32)
  shade_f = np.float32(scene.ambient) + np.float32(scene.sun_strength) * lambert
  rgb = np.empty((n_pix, 3), np.float32)
  rgb[flat] = np.clip(albedo, 0.0, 1.0) * shade_f[:, None]
  if n_hit < n_pix:
    sky = np.flatnonzero(~hit.ravel())
    rgb[sky] = sky_color(d.reshape(-1, 3)[sky], scene.sky_seed)
  out["rgb"] = np.clip(rgb, 0.0, 1.0).reshape(height, width, 3)
  return out
