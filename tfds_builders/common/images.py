"""Image readers that keep every bit: 16-bit PNGs as 16-bit, JPEGs with the exact IDCT.

- `tf.io.decode_png` decodes to 8 bits by default; on a 16-bit PNG that silently keeps only the
  high byte. 16-bit files (KITTI annotated depth, SYNTHIA depth and labels, NYU raw depth) are
  therefore checked to be 16-bit in their PNG header and decoded with `dtype=tf.uint16`.
- `tf.io.decode_jpeg` matches PIL / libjpeg's reference output only with
  `dct_method="INTEGER_ACCURATE"` (the default picks a faster, approximate IDCT).

All readers take a path (anything `tf.io.gfile` opens) and return numpy arrays.
"""

import struct

import numpy as np
import tensorflow as tf

from tfds_builders.common import errors

# PNG file signature and IHDR layout (ISO/IEC 15948, PNG spec section 5.2 and 11.2.2): 8-byte
# signature, then the IHDR chunk: 4-byte length, b"IHDR", width (4), height (4), bit depth (1),
# colour type (1).
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IHDR_TAG_OFFSET = 12
PNG_BIT_DEPTH_OFFSET = 24
PNG_HEADER_BYTES = 26
# JPEG start-of-image marker (ITU-T T.81, table B.1).
JPEG_SIGNATURE = b"\xff\xd8"
# Largest value representable in 8 bits: a "16-bit" map whose maximum is at most this value was
# most likely written through an 8-bit path (the task statement of issue 8 asks to flag it).
MAX_UINT8 = 255
# The exact IDCT of libjpeg, which PIL uses (tf.io.decode_jpeg documentation).
EXACT_DCT_METHOD = "INTEGER_ACCURATE"


def read_bytes(path) -> bytes:
  """Reads a whole file with `tf.io.gfile`; a missing file raises `MissingFileError` naming it."""
  path = str(path)
  if not tf.io.gfile.exists(path):
    raise errors.MissingFileError(f"File not found: {path!r}.")
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


def png_header(data: bytes, name: str = "<bytes>"):
  """Returns `(width, height, bit_depth, colour_type)` from a PNG's IHDR chunk.

  Raises `CorruptFileError` naming `name` when `data` is not a PNG.
  """
  if len(data) < PNG_HEADER_BYTES or data[:8] != PNG_SIGNATURE or (
      data[PNG_IHDR_TAG_OFFSET:PNG_IHDR_TAG_OFFSET + 4] != b"IHDR"):
    raise errors.CorruptFileError(
        f"{name} is not a PNG file (first bytes {data[:8]!r}, expected the PNG signature "
        f"{PNG_SIGNATURE!r} followed by an IHDR chunk). Re-download or re-extract it.")
  width, height = struct.unpack(">II", data[16:24])
  bit_depth = data[PNG_BIT_DEPTH_OFFSET]
  colour_type = data[PNG_BIT_DEPTH_OFFSET + 1]
  return width, height, bit_depth, colour_type


def _decode(decode, name, what):
  """Runs a `tf.io.decode_*` call; a truncated or corrupt file raises `CorruptFileError`."""
  try:
    return decode().numpy()
  except tf.errors.InvalidArgumentError as e:
    raise errors.CorruptFileError(
        f"{name} could not be decoded as {what} ({e.message.strip()}): the file is truncated "
        "or corrupt. Re-download or re-extract it.") from None


def decode_png16(data: bytes, name: str = "<bytes>", *, flag_low_range: bool = True,
                 channels: int = 0) -> np.ndarray:
  """Decodes a 16-bit PNG to a `uint16` array of shape `(H, W, C)`.

  Args:
    data: the encoded PNG.
    name: the file name used in error messages.
    flag_low_range: when True, a map whose maximum is at most 255 raises `CorruptFileError`: a
      16-bit depth map (KITTI: metres·256; NYU: millimetres; SYNTHIA: centimetres) never fits in 8
      bits unless it was written through an 8-bit path. Pass False for label maps.
    channels: number of channels to decode (0 keeps the file's).

  Raises:
    CorruptFileError: not a PNG, not 16-bit, or (with `flag_low_range`) maximum <= 255.
  """
  _, _, bit_depth, _ = png_header(data, name)
  if bit_depth != 16:
    raise errors.CorruptFileError(
        f"{name} is a {bit_depth}-bit PNG; a 16-bit PNG was expected (an 8-bit file cannot hold "
        "this map's values). Use the original file from the dataset archive.")
  array = _decode(lambda: tf.io.decode_png(data, channels=channels, dtype=tf.uint16), name,
                  "a 16-bit PNG")
  if flag_low_range and int(array.max(initial=0)) <= MAX_UINT8:
    raise errors.CorruptFileError(
        f"{name} is a 16-bit PNG whose maximum value is {int(array.max(initial=0))} <= "
        f"{MAX_UINT8}: it was most likely written through an 8-bit path (high or low byte "
        "lost). Use the original file from the dataset archive.")
  return array


def read_png16(path, *, flag_low_range: bool = True, channels: int = 0) -> np.ndarray:
  """Reads a 16-bit PNG file as `uint16` `(H, W, C)`; see `decode_png16`."""
  return decode_png16(read_bytes(path), str(path), flag_low_range=flag_low_range,
                      channels=channels)


def decode_rgb(data: bytes, name: str = "<bytes>") -> np.ndarray:
  """Decodes an 8-bit PNG or a JPEG to `uint8` `(H, W, 3)` RGB.

  JPEGs use the exact IDCT (`INTEGER_ACCURATE`); PNGs must be 8-bit (a 16-bit PNG is not an RGB
  photograph and raises `CorruptFileError`).
  """
  if data[:2] == JPEG_SIGNATURE:
    return _decode(lambda: tf.io.decode_jpeg(data, channels=3, dct_method=EXACT_DCT_METHOD),
                   name, "a JPEG")
  _, _, bit_depth, _ = png_header(data, name)
  if bit_depth != 8:
    raise errors.CorruptFileError(
        f"{name} is a {bit_depth}-bit PNG; an 8-bit RGB image was expected.")
  return _decode(lambda: tf.io.decode_png(data, channels=3), name, "an 8-bit PNG")


def read_rgb(path) -> np.ndarray:
  """Reads an 8-bit PNG or JPEG file as `uint8` `(H, W, 3)`; see `decode_rgb`."""
  return decode_rgb(read_bytes(path), str(path))


def encode_png(array: np.ndarray) -> bytes:
  """Encodes a `uint8` or `uint16` `(H, W, C)` array as PNG bytes (lossless)."""
  array = np.asarray(array)
  if array.dtype not in (np.uint8, np.uint16) or array.ndim != 3:
    raise errors.InvalidInputError(
        f"encode_png expects a uint8/uint16 array of rank 3 (H, W, C); got dtype {array.dtype} "
        f"shape {array.shape}.")
  return tf.io.encode_png(array).numpy()
