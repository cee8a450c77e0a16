"""DPT: ViT encoder + dense prediction head (Ranftl, Bochkovskiy, Koltun 2021, "Vision
Transformers for Dense Prediction", ICCV; reference code github.com/isl-org/DPT).

ViT-B/16 (Dosovitskiy et al. 2021): patch embedding, class token, learned position embeddings,
pre-norm transformer blocks. Tokens of four hooked blocks are "reassembled": project readout
(concatenate the class token, Linear + GELU), reshape to (H/16, W/16, D), 1x1 conv, resample to
strides 4/8/16/32, 3x3 conv to ``features`` channels; then RefineNet-style fusion (residual conv
units, bilinear x2) and the monocular depth head (3x3 conv, x2, 3x3 conv 32, ReLU, 1x1 conv).

Deliberate differences: position embeddings are sized for the given input (no interpolation);
bilinear upsampling uses half-pixel centres (the reference uses align_corners=True).
"""

import keras

from tfdepth.errors import InvalidInputError
from tfdepth.layers import ClassTokenPositionEmbedding
from tfdepth.layers import ReadoutConcat
from tfdepth.models import _common
from tfdepth.models import encoders
from tfdepth.models import heads

# ViT-Base/16 (Dosovitskiy et al. 2021, Table 1): patch 16, width 768, 12 layers, 12 heads,
# MLP 3072. LayerNorm epsilon 1e-6 (timm / DPT).
VIT_PATCH_SIZE = 16
VIT_HIDDEN_SIZE = 768
VIT_NUM_LAYERS = 12
VIT_NUM_HEADS = 12
VIT_MLP_DIM = 3072
VIT_LAYER_NORM_EPSILON = 1e-6
# DPT-Base hooks (blocks 2, 5, 8, 11, 0-based) and reassemble channels (Ranftl et al. 2021,
# Sec. 4 / dpt/vit.py), fusion width 256.
DPT_HOOKS = (2, 5, 8, 11)
DPT_REASSEMBLE_CHANNELS = (96, 192, 384, 768)
DPT_FEATURES = 256
# Reassembled strides of the four hooks (x4, x2, x1, x0.5 resampling of the stride-16 tokens).
DPT_STRIDES = (4, 8, 16, 32)
# Stride-32 resampling of the fourth hook (dpt/vit.py act_postprocess4): nn.Conv2d(kernel_size=3,
# stride=2, padding=1).
DPT_DOWNSAMPLE_KERNEL = 3
# Depth head (dpt/models.py DPTDepthModel): 3x3 conv to features/2, x2, 3x3 conv 32, ReLU, 1x1.
DPT_HEAD_HIDDEN = 32
# features // 2 must be >= 1 for the head's first conv.
DPT_MIN_FEATURES = 2
# DPT normalises with mean 0.5, std 0.5: [0, 1] -> [-1, 1].
DPT_INPUT_SCALE = 2.0
DPT_INPUT_OFFSET = -1.0


def _transformer_block(x, hidden, heads_, mlp_dim, name):
  layers = keras.layers
  y = layers.LayerNormalization(epsilon=VIT_LAYER_NORM_EPSILON, name=f"{name}_norm1")(x)
  y = layers.MultiHeadAttention(heads_, hidden // heads_, name=f"{name}_attn")(y, y)
  x = layers.Add(name=f"{name}_add1")([x, y])
  y = layers.LayerNormalization(epsilon=VIT_LAYER_NORM_EPSILON, name=f"{name}_norm2")(x)
  y = layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp1")(y)
  y = layers.Dense(hidden, name=f"{name}_mlp2")(y)
  return layers.Add(name=f"{name}_add2")([x, y])


def _residual_conv_unit(x, features, name):
  layers = keras.layers
  y = layers.ReLU(name=f"{name}_relu1")(x)
  y = layers.Conv2D(features, 3, padding="same", name=f"{name}_conv1")(y)
  y = layers.ReLU(name=f"{name}_relu2")(y)
  y = layers.Conv2D(features, 3, padding="same", name=f"{name}_conv2")(y)
  return layers.Add(name=f"{name}_add")([x, y])


def build_dpt(input_shape=(384, 384, 3), patch_size=VIT_PATCH_SIZE, hidden_size=VIT_HIDDEN_SIZE,
              num_layers=VIT_NUM_LAYERS, num_heads=VIT_NUM_HEADS, mlp_dim=VIT_MLP_DIM,
              hooks=DPT_HOOKS, reassemble_channels=DPT_REASSEMBLE_CHANNELS,
              features=DPT_FEATURES, depth_activation="relu", max_depth=None, name="dpt"):
  """Builds DPT (Ranftl et al. 2021) on a ViT encoder; defaults are DPT-Base (ViT-B/16).

  Args:
    input_shape: ``(H, W, 3)``, H and W multiples of 32 (paper 384x384).
    patch_size: ViT patch size; must be 16 (the reassemble strides assume it).
    hidden_size, num_layers, num_heads, mlp_dim: ViT width, depth, heads (divides width), MLP.
    hooks: four increasing 0-based block indices whose tokens feed the decoder.
    reassemble_channels: four channel counts after reassembling (strides 4, 8, 16, 32).
    features: fusion width.
    depth_activation, max_depth: output non-linearity (DPT: ``"relu"``), see
      :func:`tfdepth.models.heads.check_depth_activation`.
    name: model name and layer-name prefix.
  Returns:
    Model: float32 RGB ``(B, H, W, 3)`` in [0, 1] -> ``{"depth": (B, H, W, 1)}`` float32 (metres
    for a metric model; DPT's relative models predict inverse depth up to scale/shift).
  Raises:
    InvalidInputError: on any inconsistent configuration.
  """
  _common.check_name(name)
  h, w, c = _common.check_input_shape(input_shape)
  if patch_size != VIT_PATCH_SIZE:
    raise InvalidInputError(f"patch_size must be {VIT_PATCH_SIZE}, got {patch_size!r}")
  for value, arg in ((hidden_size, "hidden_size"), (num_layers, "num_layers"),
                     (num_heads, "num_heads"), (mlp_dim, "mlp_dim")):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise InvalidInputError(f"{arg} must be a positive int, got {value!r}")
  if (isinstance(features, bool) or not isinstance(features, int)
      or features < DPT_MIN_FEATURES):
    raise InvalidInputError(
        f"features must be an int >= {DPT_MIN_FEATURES} (the head's first conv has "
        f"features // 2 channels), got {features!r}")
  if hidden_size % num_heads:
    raise InvalidInputError(
        f"hidden_size must be divisible by num_heads, got {hidden_size} and {num_heads}")
  try:
    hooks = tuple(hooks)
  except TypeError:
    raise InvalidInputError(
        f"hooks must be 4 increasing block indices in [0, {num_layers - 1}], got {hooks!r}"
    ) from None
  if (len(hooks) != 4 or any(not isinstance(k, int) or isinstance(k, bool) for k in hooks)
      or list(hooks) != sorted(set(hooks)) or hooks[0] < 0 or hooks[-1] >= num_layers):
    raise InvalidInputError(
        f"hooks must be 4 increasing block indices in [0, {num_layers - 1}], got {hooks!r}")
  try:
    channels = tuple(reassemble_channels)
  except TypeError:
    channels = ()
  if len(channels) != 4 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                               for v in channels):
    raise InvalidInputError(
        f"reassemble_channels must be 4 positive ints, got {reassemble_channels!r}")
  max_depth = heads.check_depth_activation(depth_activation, max_depth)
  layers = keras.layers
  gh, gw = h // patch_size, w // patch_size
  inputs = keras.Input((h, w, c), name=f"{name}_image")
  x = encoders.normalize_image(inputs, layers, DPT_INPUT_SCALE, DPT_INPUT_OFFSET,
                               f"{name}_normalize")
  x = layers.Conv2D(hidden_size, patch_size, strides=patch_size, name=f"{name}_patch_embed")(x)
  x = layers.Reshape((gh * gw, hidden_size), name=f"{name}_tokens")(x)
  x = ClassTokenPositionEmbedding(gh * gw, name=f"{name}_pos_embed")(x)
  hooked = []
  for i in range(hooks[-1] + 1):
    x = _transformer_block(x, hidden_size, num_heads, mlp_dim, f"{name}_block{i}")
    if i in hooks:
      hooked.append(x)
  # Reassemble.
  maps = []
  for j, (tokens, ch, stride) in enumerate(zip(hooked, channels, DPT_STRIDES), start=1):
    p = f"{name}_reassemble{j}"
    y = ReadoutConcat(name=f"{p}_readout")(tokens)
    y = layers.Dense(hidden_size, activation="gelu", name=f"{p}_readout_project")(y)
    y = layers.Reshape((gh, gw, hidden_size), name=f"{p}_reshape")(y)
    y = layers.Conv2D(ch, 1, name=f"{p}_project")(y)
    if stride < patch_size:
      factor = patch_size // stride
      y = layers.Conv2DTranspose(ch, factor, strides=factor, name=f"{p}_resample")(y)
    elif stride > patch_size:
      # DPT: nn.Conv2d(k=3, stride=2, padding=1), symmetric zero padding (Keras "same" would pad
      # bottom/right only and shift the sampling grid by one token).
      y = encoders._pytorch_pad(y, layers, DPT_DOWNSAMPLE_KERNEL, 1, f"{p}_resample")  # pylint: disable=protected-access
      y = layers.Conv2D(ch, DPT_DOWNSAMPLE_KERNEL, strides=2, padding="valid",
                        name=f"{p}_resample")(y)
    y = layers.Conv2D(features, 3, padding="same", use_bias=False, name=f"{p}_to_features")(y)
    maps.append(y)
  # Fusion, from the deepest map.
  path = None
  for j in range(4, 0, -1):
    p = f"{name}_fusion{j}"
    if path is None:
      y = maps[j - 1]
    else:
      y = layers.Add(name=f"{p}_skip")(
          [path, _residual_conv_unit(maps[j - 1], features, f"{p}_rcu1")])
    y = _residual_conv_unit(y, features, f"{p}_rcu2")
    y = layers.UpSampling2D(2, interpolation="bilinear", name=f"{p}_up")(y)
    path = layers.Conv2D(features, 1, name=f"{p}_out")(y)
  # Depth head.
  y = layers.Conv2D(features // 2, 3, padding="same", name=f"{name}_head_conv1")(path)
  y = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_head_up")(y)
  y = layers.Conv2D(DPT_HEAD_HIDDEN, 3, padding="same", activation="relu",
                    name=f"{name}_head_conv2")(y)
  y = layers.Conv2D(1, 1, name=f"{name}_head_conv3")(y)
  depth = heads.depth_output(y, layers, depth_activation, max_depth, name)
  return keras.Model(inputs, {"depth": depth}, name=name)


__all__ = ["build_dpt"]
