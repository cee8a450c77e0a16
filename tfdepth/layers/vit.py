"""Vision-transformer token layers (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words";
readout handling of DPT, Ranftl, Bochkovskiy, Koltun 2021, "Vision Transformers for Dense
Prediction", Sec. 3)."""

import numbers

import keras

from tfdepth.errors import InvalidInputError

# ViT initialises the class token to zeros and position embeddings with a truncated normal of
# standard deviation 0.02 (timm vision_transformer.py, used by DPT).
POSITION_EMBEDDING_STDDEV = 0.02


@keras.saving.register_keras_serializable(package="tfdepth")
class ClassTokenPositionEmbedding(keras.layers.Layer):
  """Prepends a learned class ("readout") token and adds learned position embeddings.

  Args:
    num_patches: N, number of patch tokens (fixed: embeddings are not interpolated).
  Input ``(B, N, D)`` float32 patch embeddings; output ``(B, N + 1, D)``, token 0 the class token.
  """

  def __init__(self, num_patches, **kwargs):
    super().__init__(**kwargs)
    if isinstance(num_patches, bool) or not isinstance(num_patches, numbers.Integral) or (
        num_patches < 1):
      raise InvalidInputError(f"num_patches must be a positive int, got {num_patches!r}")
    self.num_patches = int(num_patches)

  def build(self, input_shape):
    if input_shape[1] is not None and input_shape[1] != self.num_patches:
      raise InvalidInputError(
          f"expected {self.num_patches} patch tokens, got input shape {tuple(input_shape)}")
    dim = input_shape[-1]
    self.class_token = self.add_weight(shape=(1, 1, dim), initializer="zeros",
                                       name="class_token")
    self.position_embedding = self.add_weight(
        shape=(1, self.num_patches + 1, dim), name="position_embedding",
        initializer=keras.initializers.TruncatedNormal(stddev=POSITION_EMBEDDING_STDDEV))
    super().build(input_shape)

  def call(self, tokens):
    batch = keras.ops.shape(tokens)[0]
    cls = keras.ops.broadcast_to(keras.ops.cast(self.class_token, tokens.dtype),
                                 (batch, 1, keras.ops.shape(tokens)[-1]))
    x = keras.ops.concatenate([cls, tokens], axis=1)
    return x + keras.ops.cast(self.position_embedding, tokens.dtype)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.num_patches + 1, input_shape[2])

  def get_config(self):
    config = super().get_config()
    config["num_patches"] = self.num_patches
    return config


@keras.saving.register_keras_serializable(package="tfdepth")
class ReadoutConcat(keras.layers.Layer):
  """DPT's "project" readout, first half: concatenates the readout token to every patch token.

  Input ``(B, 1 + N, D)`` (token 0 = readout); output ``(B, N, 2D)``. DPT follows it with a
  Linear(2D -> D) + GELU (a stock ``Dense``).
  """

  def call(self, tokens):
    readout = tokens[:, :1]
    patches = tokens[:, 1:]
    readout = keras.ops.broadcast_to(readout, keras.ops.shape(patches))
    return keras.ops.concatenate([patches, readout], axis=-1)

  def compute_output_shape(self, input_shape):
    n = None if input_shape[1] is None else input_shape[1] - 1
    return (input_shape[0], n, 2 * input_shape[2])
