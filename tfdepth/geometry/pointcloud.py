"""Depth maps to coloured point clouds, and PLY files (numpy in / numpy out, eager only).

Points are camera-frame (x right, y down, z forward), metres, float32. PLY files are written and
read through `tf.io.gfile` (local paths, GCS, ...). Format: "PLY - Polygon File Format" (Turk 1994,
http://paulbourke.net/dataformats/ply/), vertex element only.
"""

import numpy as np
import tensorflow as tf

from tfdepth.errors import DataError, InvalidInputError
from tfdepth.geometry.camera import backproject

# 8-bit colour range of PLY `uchar` red/green/blue properties.
_COLOR_MAX = 255
# PLY scalar types (Bourke's spec names and their common aliases) -> little-endian numpy dtypes.
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}
# "%.9g" prints every float32 with enough digits to read back bit-exactly (9 significant digits).
_ASCII_FLOAT_FORMAT = "%.9g"


def _as_numpy(x):
  return x.numpy() if tf.is_tensor(x) else np.asarray(x)


def _single_cloud(depth, k, image, mask):
  h, w = depth.shape[:2]
  points = backproject(depth[np.newaxis].astype(np.float32),
                       k[np.newaxis].astype(np.float32)).numpy()[0]
  keep = np.isfinite(depth[..., 0]) & (depth[..., 0] > 0)
  if mask is not None:
    if mask.shape[:2] != (h, w):
      raise InvalidInputError(f"mask must have shape ({h}, {w}[, 1]), got {mask.shape}.")
    keep &= mask.reshape(h, w) > 0
  colors = None
  if image is not None:
    if image.ndim != 3 or image.shape[:2] != (h, w) or image.shape[2] not in (1, 3):
      raise InvalidInputError(
          f"image must have shape ({h}, {w}, 3) or ({h}, {w}, 1), got {image.shape}.")
    colors = np.repeat(image, 3, axis=-1) if image.shape[2] == 1 else image
    colors = colors[keep]
  return points[keep].astype(np.float32), colors


def depth_to_point_cloud(depth, intrinsics, image=None, mask=None):
  """Camera-frame points (and colours) of the pixels with valid depth.

  Args:
    depth: `(H, W, 1)` (single) or `(B, H, W, 1)` (batched) z-depth, metres; pixels with depth <= 0
      or non-finite depth are dropped.
    intrinsics: `(3, 3)` or `(B, 3, 3)` pixels.
    image: optional `(H, W, C)` / `(B, H, W, C)`, C in {1, 3}; its values are returned as colours
      (same dtype; grey is repeated to 3 channels).
    mask: optional `(H, W[, 1])` / `(B, H, W[, 1])`; pixels with mask <= 0 are dropped.

  Returns:
    Single input: `(points (N, 3) float32, colors (N, 3) or None)` as numpy arrays, in row-major
    pixel order. Batched input: `(list of points, list of colors)`, one entry per image.
  """
  d = _as_numpy(depth)
  k = _as_numpy(intrinsics)
  img = None if image is None else _as_numpy(image)
  m = None if mask is None else _as_numpy(mask)
  if d.ndim == 3 and d.shape[-1] == 1:
    if k.shape != (3, 3):
      raise InvalidInputError(f"intrinsics must have shape (3, 3) for a single depth map "
                              f"{d.shape}, got {k.shape}.")
    return _single_cloud(d, k, img, m)
  if d.ndim == 4 and d.shape[-1] == 1:
    b = d.shape[0]
    if k.shape != (b, 3, 3):
      raise InvalidInputError(f"intrinsics must have shape ({b}, 3, 3) for depth {d.shape}, "
                              f"got {k.shape}.")
    for x, n in ((img, "image"), (m, "mask")):
      if x is not None and x.shape[0] != b:
        raise InvalidInputError(f"{n} must have batch size {b}, got shape {x.shape}.")
    clouds = [_single_cloud(d[i], k[i], None if img is None else img[i],
                            None if m is None else m[i]) for i in range(b)]
    return [c[0] for c in clouds], [c[1] for c in clouds]
  raise InvalidInputError(f"depth must have shape (H, W, 1) or (B, H, W, 1), got {d.shape}.")


def _colors_to_uint8(colors, n):
  c = np.asarray(colors)
  if c.shape != (n, 3):
    raise InvalidInputError(f"colors must have shape ({n}, 3), got {c.shape}.")
  if c.dtype == np.uint8:
    return c
  if np.issubdtype(c.dtype, np.floating):
    # Floats are colours in [0, 1] (tfdepth's image convention).
    return np.round(np.clip(c, 0.0, 1.0) * _COLOR_MAX).astype(np.uint8)
  if np.issubdtype(c.dtype, np.integer) and c.size and (c.min() < 0 or c.max() > _COLOR_MAX):
    raise InvalidInputError(
        f"integer colors must lie in [0, {_COLOR_MAX}], got range [{c.min()}, {c.max()}].")
  return c.astype(np.uint8)


def write_ply(path, points, colors=None, binary=False):
  """Writes a vertex-only PLY file (x, y, z float32; optional red, green, blue uchar).

  Args:
    path: file path (any `tf.io.gfile` scheme).
    points: `(N, 3)` metres.
    colors: optional `(N, 3)`: uint8, or floats in [0, 1] (rounded to 8 bits).
    binary: False for `ascii 1.0`, True for `binary_little_endian 1.0`.
  """
  p = np.asarray(_as_numpy(points), dtype=np.float32)
  if p.ndim != 2 or p.shape[1] != 3:
    raise InvalidInputError(f"points must have shape (N, 3), got {p.shape}.")
  n = p.shape[0]
  c = None if colors is None else _colors_to_uint8(_as_numpy(colors), n)
  header = ["ply", "format %s 1.0" % ("binary_little_endian" if binary else "ascii"),
            "comment written by tfdepth", f"element vertex {n}",
            "property float x", "property float y", "property float z"]
  if c is not None:
    header += ["property uchar red", "property uchar green", "property uchar blue"]
  header.append("end_header")
  data = ("\n".join(header) + "\n").encode("ascii")
  if binary:
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if c is not None:
      fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    rec = np.empty(n, dtype=fields)
    rec["x"], rec["y"], rec["z"] = p[:, 0], p[:, 1], p[:, 2]
    if c is not None:
      rec["red"], rec["green"], rec["blue"] = c[:, 0], c[:, 1], c[:, 2]
    data += rec.tobytes()
  else:
    lines = []
    for i in range(n):
      line = " ".join(_ASCII_FLOAT_FORMAT % v for v in p[i])
      if c is not None:
        line += " %d %d %d" % tuple(c[i])
      lines.append(line)
    data += ("\n".join(lines) + ("\n" if lines else "")).encode("ascii")
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(data)


def read_ply(path):
  """Reads the vertex element of an ASCII or binary little-endian PLY file.

  Returns:
    `(points (N, 3) float32, colors (N, 3) uint8 or None)`.

  Raises:
    DataError: missing, truncated or malformed file, or a format this reader does not handle
      (big endian, list properties in the vertex element).
  """
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      raw = f.read()
  except tf.errors.NotFoundError as e:
    raise DataError(f"PLY file {path!r} does not exist.") from e
  end = raw.find(b"end_header")
  if not raw.startswith(b"ply") or end < 0:
    raise DataError(f"{path!r} is not a PLY file (no 'ply' magic / 'end_header').")
  body_start = raw.index(b"\n", end) + 1 if b"\n" in raw[end:] else len(raw)
  header = raw[:end].decode("ascii", errors="replace").splitlines()
  fmt, count, props, in_vertex, seen_vertex = None, None, [], False, False
  for line in header[1:]:
    words = line.split()
    if not words or words[0] in ("comment", "obj_info"):
      continue
    if words[0] == "format":
      fmt = words[1] if len(words) > 1 else None
    elif words[0] == "element":
      if seen_vertex:
        break  # Elements after the vertices are not read.
      in_vertex = len(words) == 3 and words[1] == "vertex"
      if in_vertex:
        seen_vertex = True
        count = int(words[2])
      else:
        raise DataError(f"{path!r}: element {words[1:]} before 'vertex' is not supported.")
    elif words[0] == "property" and in_vertex:
      if len(words) != 3 or words[1] not in _PLY_TYPES:
        raise DataError(f"{path!r}: unsupported vertex property {line.strip()!r}.")
      props.append((words[2], _PLY_TYPES[words[1]]))
  if fmt not in ("ascii", "binary_little_endian"):
    raise DataError(f"{path!r}: format {fmt!r} is not supported "
                    f"(expected ascii or binary_little_endian).")
  names = [n for n, _ in props]
  if count is None or not {"x", "y", "z"} <= set(names):
    raise DataError(f"{path!r}: no vertex element with x, y, z properties (got {names}).")
  body = raw[body_start:]
  if fmt == "ascii":
    rows = body.decode("ascii", errors="replace").split("\n")
    rows = [r for r in rows if r.strip()][:count]
    if len(rows) < count:
      raise DataError(f"{path!r}: truncated, {len(rows)} of {count} vertices present.")
    try:
      table = np.array([[float(v) for v in r.split()[:len(props)]] for r in rows],
                       dtype=np.float64).reshape(count, len(props))
    except ValueError as e:
      raise DataError(f"{path!r}: malformed vertex line ({e}).") from e
    columns = {n: table[:, i] for i, n in enumerate(names)}
  else:
    dtype = np.dtype(props)
    if len(body) < count * dtype.itemsize:
      raise DataError(f"{path!r}: truncated, {len(body)} bytes of vertex data for {count} "
                      f"vertices of {dtype.itemsize} bytes.")
    rec = np.frombuffer(body, dtype=dtype, count=count)
    columns = {n: rec[n] for n in names}
  points = np.stack([columns["x"], columns["y"], columns["z"]], axis=-1).astype(np.float32)
  colors = None
  if {"red", "green", "blue"} <= set(names):
    colors = np.stack([columns["red"], columns["green"], columns["blue"]],
                      axis=-1).astype(np.uint8)
  return points.reshape(count, 3), None if colors is None else colors.reshape(count, 3)
