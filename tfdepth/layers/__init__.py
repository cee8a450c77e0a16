"""Custom Keras layers of tfdepth (registered as serializable under package "tfdepth")."""

from tfdepth.layers.discretization import BinsToDepth
from tfdepth.layers.discretization import OrdinalToDepth
from tfdepth.layers.padding import ReflectionPadding2D
from tfdepth.layers.padding import reflection_pad
from tfdepth.layers.padding import reflection_slices
from tfdepth.layers.vit import ClassTokenPositionEmbedding
from tfdepth.layers.vit import ReadoutConcat

__all__ = ["BinsToDepth", "ClassTokenPositionEmbedding", "OrdinalToDepth", "ReadoutConcat",
           "ReflectionPadding2D", "reflection_pad", "reflection_slices"]
