"""Learning-rate schedules that Keras does not ship: linear warm-up in front of any schedule.

Keras' `CosineDecay` has a built-in warm-up; constant and polynomial-decay rates do not. Vision
transformers trained from random initialisation need one (Dosovitskiy et al. 2021, "An Image is
Worth 16x16 Words", App. B.1: linear warm-up, then decay); without it Adam's first steps can
push a bounded depth head into saturation, where it gets no gradient again.
"""

import keras
from keras import ops

from tfdepth.errors import ConfigError


@keras.saving.register_keras_serializable(package="tfdepth")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
  """`rate(step) = after(0) · (step + 1) / warmup_steps` for step < warmup_steps, then
  `after(step − warmup_steps)`.

  The ramp starts at `after(0) / warmup_steps` (not 0, so the first step moves the weights) and
  reaches `after(0)` at step `warmup_steps - 1`; the wrapped schedule then runs from its own step 0,
  so a decay keeps its full length after the warm-up.

  Args:
    after: a float learning rate or a `LearningRateSchedule` (serialized in `get_config`).
    warmup_steps: int >= 1, optimizer iterations of the linear ramp.
  Raises:
    ConfigError: warmup_steps not an int >= 1, or `after` neither a number > 0 nor a schedule.
  """

  def __init__(self, after, warmup_steps):
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
      raise ConfigError(f"warmup_steps expected an int >= 1, received {warmup_steps!r}")
    if isinstance(after, dict):
      after = keras.saving.deserialize_keras_object(after)
    if not isinstance(after, keras.optimizers.schedules.LearningRateSchedule) and (
        isinstance(after, bool) or not isinstance(after, (int, float)) or not after > 0):
      raise ConfigError(f"after expected a learning rate > 0 or a LearningRateSchedule, received "
                        f"{after!r}")
    self.after = after
    self.warmup_steps = warmup_steps

  def _after(self, step):
    if isinstance(self.after, keras.optimizers.schedules.LearningRateSchedule):
      return ops.cast(self.after(step), "float32")
    return ops.cast(self.after, "float32")

  def __call__(self, step):
    step = ops.cast(step, "float32")
    warmup = float(self.warmup_steps)
    ramp = self._after(0.0) * (step + 1.0) / warmup
    return ops.where(step < warmup, ramp, self._after(ops.maximum(step - warmup, 0.0)))

  def get_config(self):
    after = (keras.saving.serialize_keras_object(self.after)
             if isinstance(self.after, keras.optimizers.schedules.LearningRateSchedule)
             else float(self.after))
    return {"after": after, "warmup_steps": self.warmup_steps}


__all__ = ["LinearWarmup"]
