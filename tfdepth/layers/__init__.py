"""Custom Keras layers of tfdepth (registered as serializable under package "tfdepth")."""

from tfdepth.layers.discretization import BinsToDepth
from tfdepth.layers.discretization import OrdinalToDepth
from tfdepth.layers.padding import ReflectionPadding2D

__all__ = ["BinsToDepth", "OrdinalToDepth", "ReflectionPadding2D"]
