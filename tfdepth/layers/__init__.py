"""Custom Keras layers of tfdepth (registered as serializable under package "tfdepth")."""

from tfdepth.layers.padding import ReflectionPadding2D

__all__ = ["ReflectionPadding2D"]
