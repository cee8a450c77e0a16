"""Supervised depth training: a `keras.Model` wrapper with custom `train_step` / `test_step`.

`SupervisedDepthModel` wraps a depth network (any `keras.Model` mapping an image batch
`(B, H, W, 3)` float32 in [0, 1] to a dict with at least `"depth"`: `(B, H, W, 1)` metres) and
trains it with `model.fit` on batches of the common supervised element of `tfdepth.data`:
`{"image": (B, H, W, 3) float32 [0, 1], "depth": (B, H, W, 1) float32 metres, 0 = invalid,
"intrinsics": (B, 3, 3)}` (or an `(image, depth)` / `(image, {"depth": ...})` tuple).

The loss is a weighted sum of *loss terms*, each a pure function from `tfdepth.losses`
(`fn(pred, target, mask, **kwargs) -> (B,)` per-image losses). The trainer does no loss math
itself: it only selects the inputs of each term, averages per-image values over the **global**
batch (one place: `_global_batch_mean`) and sums the weighted terms. Ground truth may be dense or
sparse: the validity mask is `depth > 0` (DESIGN.md: 0 = invalid).

Distribution: under `tf.distribute` strategies Keras' optimizer *sums* the gradients of the
replicas (`keras/src/backend/tensorflow/optimizer.py::_all_reduce_sum_gradients`), so each
replica's loss is `sum(per-image losses on the replica) / (local batch * replicas)`, which equals
the mean over the global batch when replicas receive equal shares (`tf.nn.compute_average_loss`).
Trackers are updated with the un-scaled value weighted by the local batch size, so the logged
value is the global-batch mean, as Keras' own `train_step` does.

Mixed precision: the network may compute in float16/bfloat16 (`keras.mixed_precision`); its
outputs are cast to float32 before the losses and metrics, and `self.optimizer.scale_loss`
applies the dynamic loss scale of `LossScaleOptimizer` (installed by `compile()` for
`mixed_float16`).

Non-finite steps: a step whose total, any term, the predicted depth or a gradient (not checked
under a `LossScaleOptimizer`, which skips such steps itself) is NaN/inf on any replica is **not
applied** (`apply_if_finite`: weights, optimizer slots, iterations, weight decay and loss
scale stay as they were), the depth metrics are not updated with it, and `NonFiniteLossCheck`
(added to every `fit()` automatically) raises `tfdepth.errors.NonFiniteError` naming the global
step, epoch, batch and the offending term(s).

Gradient clipping (`clipnorm` / `global_clipnorm` / `clipvalue` of the optimizer) bounds the
gradient of the global batch under any number of replicas (`clip_across_replicas`).
"""

import dataclasses
import importlib
import math
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import keras
import tensorflow as tf

from tfdepth.errors import InvalidInputError, NonFiniteError

# Name of the total-loss tracker (Keras' own convention: `logs["loss"]`, `logs["val_loss"]`).
TOTAL_LOSS_NAME = "loss"
# Suffix of the per-term trackers: `logs["silog_loss"]`, `logs["val_silog_loss"]`.
TERM_SUFFIX = "_loss"

# Loss functions of `tfdepth.losses` addressable by name in experiment configs. Every entry is
# called as `fn(pred, target, mask=mask, **kwargs)` (see `LossTerm` for the variants) and returns
# per-image losses `(B,)`.
#   silog:              Eigen et al., NIPS 2014, eq. 4 (variance_focus as in BTS / AdaBins)
#   silog_bts:          Lee et al. 2019 (BTS): 10 * sqrt(mean d^2 - 0.85 mean(d)^2)
#   berhu:              Laina et al., 3DV 2016 (FCRN), eq. 2
#   l1:                 mean absolute error over valid pixels
#   gradient_matching:  Li & Snavely, CVPR 2018 (MegaDepth), eq. 5 / Ranftl et al. (MiDaS)
#   ordinal:            Fu et al., CVPR 2018 (DORN), eq. 2 (pred = ordinal logits)
#   sid_cross_entropy:  spacing-increasing discretisation classification (pred = bin logits)
#   ranking:            Chen et al., NIPS 2016 (depth in the wild) / Xian et al. 2020
LOSS_FUNCTIONS = {
    "silog": "scale_invariant_log_loss",
    "silog_bts": "silog_bts_loss",
    "berhu": "berhu_loss",
    "l1": "l1_loss",
    "gradient_matching": "gradient_matching_loss",
    "gradient": "gradient_loss",            # Eigen & Fergus 2015, Eq. 2
    "ordinal": "ordinal_regression_loss",
    "sid_cross_entropy": "sid_cross_entropy",
    "ranking": "ranking_loss",
}


def resolve_loss_function(name):
  """Returns the `tfdepth.losses` function registered under `name` in `LOSS_FUNCTIONS`.

  Raises:
    InvalidInputError: if `name` is unknown.
  """
  if name not in LOSS_FUNCTIONS:
    raise InvalidInputError(
        f"unknown loss term {name!r}; expected one of {sorted(LOSS_FUNCTIONS)}")
  losses = importlib.import_module("tfdepth.losses")
  return getattr(losses, LOSS_FUNCTIONS[name])


@dataclasses.dataclass(frozen=True)
class LossTerm:
  """One weighted term of the training loss.

  Attributes:
    name: tracker name (`logs[name + "_loss"]`); also the `LOSS_FUNCTIONS` key when `fn` is None.
    weight: multiplier of the term in the total loss (dimensionless).
    fn: `fn(pred, target, mask=mask, **kwargs) -> (B,)` per-image loss; default
      `resolve_loss_function(name)`.
    prediction_key: key of the network output used as `pred` (e.g. "depth", "ordinal_logits").
    target_key: key of the ground-truth dict passed as the second positional argument (default
      "depth"); None passes no positional target (e.g. `ranking_loss(pred, point_a, ...)`).
    kwargs: extra constant keyword arguments of `fn` (e.g. `{"variance_focus": 0.85}`,
      `{"edges": [...]}` for the ordinal losses).
    target_kwargs: `{fn argument: ground-truth key}` passed as keyword arguments (e.g.
      `{"point_a": "point_a", "point_b": "point_b", "relation": "relation"}` for ranking).
    use_mask: pass `mask=` (validity `depth > 0` [and <= max_depth], `(B, H, W, 1)` float32).
  """
  name: str
  weight: float = 1.0
  fn: Optional[Callable[..., Any]] = None
  prediction_key: str = "depth"
  target_key: str = "depth"
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  target_kwargs: Mapping[str, str] = dataclasses.field(default_factory=dict)
  use_mask: bool = True

  def resolved_fn(self):
    return self.fn if self.fn is not None else resolve_loss_function(self.name)


def _as_loss_terms(loss_terms):
  if not loss_terms:
    raise InvalidInputError(f"expected at least one loss term, received {loss_terms!r}")
  terms = []
  for t in loss_terms:
    if isinstance(t, LossTerm):
      terms.append(t)
    elif isinstance(t, (tuple, list)) and len(t) in (2, 3):
      terms.append(LossTerm(*t))
    else:
      raise InvalidInputError(
          f"expected a LossTerm or a (name, weight[, fn]) tuple, received {t!r}")
  names = [t.name for t in terms]
  if len(set(names)) != len(names):
    raise InvalidInputError(f"loss term names must be unique, received {names}")
  for t in terms:
    if not (isinstance(t.weight, (int, float)) and math.isfinite(t.weight)):
      raise InvalidInputError(
          f"loss term {t.name!r} expected a finite float weight, received {t.weight!r}")
  return terms


def _global_batch_mean(per_image):
  """Per-replica contribution to the mean over the global batch of a `(B,)` per-image loss.

  `sum(per_image) / (B_local * num_replicas_in_sync)`; summing it over the replicas (which Keras'
  optimizer does with the gradients) gives the global-batch mean. This is the only place where
  per-replica and global batch sizes meet.
  """
  per_image = tf.cast(tf.reshape(per_image, [-1]), tf.float32)
  return tf.nn.compute_average_loss(per_image)


def _num_replicas():
  return tf.distribute.get_strategy().num_replicas_in_sync


def all_finite(*tensors):
  """Scalar bool: every element of every tensor (tensors, lists of them, `None`s skipped;
  `tf.IndexedSlices` by their values) is finite."""
  flat = [t.values if isinstance(t, tf.IndexedSlices) else t
          for t in tf.nest.flatten(tensors) if t is not None]
  # `is_finite` takes bfloat16 / float16 as they are: no float32 copy of each gradient per step.
  return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in flat]))


def is_loss_scale_optimizer(optimizer):
  """True for Keras' `LossScaleOptimizer` (`mixed_float16`), which skips non-finite gradients."""
  return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def finite_on_all_replicas(finite):
  """`finite` (scalar bool, this replica) reduced over the replicas: True iff it is True on all.

  Must be called in a replica context (a `train_step`); without a strategy it is `finite`. Every
  replica gets the same value, so a branch taken on it (`apply_if_finite`) is the same everywhere.
  """
  bad = tf.cast(tf.logical_not(finite), tf.float32)
  bad = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, bad)
  return tf.equal(bad, 0.0)


def step_is_finite(optimizer, grads, *values):
  """Whether a training step may be applied: `values` (loss total, terms, predicted depth) and
  the gradients are finite on every replica (`finite_on_all_replicas`).

  A finite loss does not imply finite gradients: masked losses drop non-finite predictions from
  their value but not from their gradient, and a NaN input pixel can vanish in the forward pass
  (the fused conv + ReLU of TF's graph optimiser maps NaN to 0) while the kernel gradient is NaN.
  The gradients are not checked under a `LossScaleOptimizer`: overflowing scaled gradients are
  expected there, and it skips those steps itself (and lowers the loss scale).
  """
  if not is_loss_scale_optimizer(optimizer):
    values = values + (list(grads),)
  return finite_on_all_replicas(all_finite(*values))


def _clipping(optimizer):
  """`(kind, threshold)` of the optimizer's gradient clipping (of the inner optimizer of a
  `LossScaleOptimizer`): kind "clipnorm" | "global_clipnorm" | "clipvalue", or None."""
  inner = getattr(optimizer, "inner_optimizer", optimizer)
  for kind in ("clipnorm", "global_clipnorm", "clipvalue"):   # Keras' `_clip_gradients` order
    value = getattr(inner, kind, None)
    if value is not None and value > 0:
      return kind, value
  return None


def clip_across_replicas(optimizer, grads):
  """Applies the optimizer's gradient clipping to the gradient of the **global** batch.

  Keras 3 (`BaseOptimizer._backend_apply_gradients`) clips each replica's gradient before the TF
  backend sums them over the replicas (`TFOptimizer._all_reduce_sum_gradients`), so with N
  replicas `clipnorm` / `global_clipnorm` / `clipvalue` bound the wrong quantity (the update of
  two replicas is up to twice the clipped one). Here, with N > 1 replicas, the gradients are
  summed over the replicas first (all-reduce), clipped as Keras would clip them on one device
  (per-variable `tf.clip_by_norm`, Keras' global-norm formula, or element-wise), and divided by N:
  the optimizer's own sum then restores the clipped global gradient, and its own per-replica
  clipping of these values (each at most threshold / N) changes nothing. With one replica this
  returns `grads` unchanged and the optimizer clips exactly as before. Under a
  `LossScaleOptimizer` the gradients are loss-scaled, so the threshold is scaled too.

  Costs one extra all-reduce of the gradients per step when clipping is on and N > 1.
  """
  clipping = _clipping(optimizer)
  replicas = _num_replicas()
  if clipping is None or replicas == 1:
    return grads
  kind, threshold = clipping
  threshold = tf.constant(threshold, tf.float32)
  if hasattr(optimizer, "inner_optimizer") and hasattr(optimizer, "dynamic_scale"):
    threshold = threshold * tf.cast(optimizer.dynamic_scale, tf.float32)
  present = [i for i, g in enumerate(grads) if g is not None]
  if not present:
    return grads
  summed = tf.distribute.get_replica_context().all_reduce(
      tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
  if kind == "clipnorm":
    clipped = [tf.clip_by_norm(g, tf.cast(threshold, g.dtype)) for g in summed]
  elif kind == "global_clipnorm":
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(g, tf.float32))) for g in summed]))
    # Keras' `clip_by_global_norm`: a no-op for a finite norm below the threshold, NaN for a
    # non-finite norm (the loss scale optimizer then skips the step).
    scale = threshold * tf.minimum(1.0 / norm, 1.0 / threshold) + (norm - norm)
    clipped = [g * tf.cast(scale, g.dtype) for g in summed]
  else:
    clipped = [tf.clip_by_value(g, -tf.cast(threshold, g.dtype), tf.cast(threshold, g.dtype))
               for g in summed]
  out = list(grads)
  for i, g in zip(present, clipped):
    out[i] = g / tf.cast(replicas, g.dtype)
  return out


def mark_non_finite(total, finite):
  """`total`, or NaN when the step is not `finite` (e.g. a non-finite prediction or gradient under
  finite loss terms), so that the logged loss shows the skipped step and `NonFiniteLossCheck`
  stops training."""
  return tf.where(finite, total, tf.constant(float("nan"), total.dtype))


def update_metrics_if(finite, depth_metrics, depth_true, depth_pred):
  """`m.update_state(depth_true, depth_pred)` for each metric; only when `finite` unless it is None.

  The streaming depth metrics assert a finite prediction in the graph; a non-finite step must reach
  `NonFiniteLossCheck` (a typed error naming the step and terms) instead of failing there.
  """
  def update():
    for m in depth_metrics:
      m.update_state(depth_true, depth_pred)

  if finite is None:
    update()
  else:
    tf.cond(finite, update, lambda: None)


def apply_if_finite(optimizer, grads, variables, finite):
  """`optimizer.apply(grads, variables)` only when `finite` (the same on every replica).

  A skipped step leaves everything as it was: weights, optimizer slots (Adam moments, momentum),
  `optimizer.iterations`, weight decay and the loss scale (and, with `restore_unless_finite`, the
  BatchNorm statistics that the forward pass assigned). Zeroing the gradients would not do:
  Adam and momentum still move the weights with their moments, and decoupled weight decay still
  shrinks them. As Keras' `LossScaleOptimizer._tf_apply`, the branch is taken in a cross-replica
  context (`merge_call`) when the strategy needs merge calls (its `apply` calls `merge_call`,
  which a `tf.cond` in a replica context cannot contain).

  Args:
    optimizer: the model's Keras optimizer (possibly a `LossScaleOptimizer`).
    grads: gradients of `variables` (per replica, not yet summed; `None` allowed).
    variables: the trainable variables.
    finite: scalar bool, identical on all replicas (`finite_on_all_replicas`).
  """
  if not optimizer.built:   # variables are created outside the conditional branch
    optimizer.build(variables)

  def skip():
    return None

  if tf.__internal__.distribute.strategy_supports_no_merge_call():
    tf.cond(finite, lambda: optimizer.apply(grads, variables), skip)
    return

  def merged(distribution, grads, variables, finite):
    # `finite` was reduced over the replicas: any replica's value is every replica's.
    finite = distribution.experimental_local_results(finite)[0]

    def apply():
      distribution.extended.call_for_each_replica(optimizer.apply, args=(grads, variables))

    tf.cond(finite, apply, skip)

  tf.distribute.get_replica_context().merge_call(merged, args=(grads, variables, finite))


def forward_state(model):
  """Values of ``model``'s non-trainable variables before a training forward pass, for
  `restore_unless_finite`.

  A training forward pass assigns some of them before the step is known to be finite: BatchNorm's
  moving mean / variance from the batch statistics (NaN after a batch with a NaN pixel) and the
  random-seed states of dropout / noise layers. Reading a resource variable gives a copy, so the
  values stay as they were when the pass then assigns the variables.

  Args:
    model: the trainer (a `keras.Model`), read before its forward pass in ``train_step``.
  Returns:
    ``(variables, values)``: the non-trainable variables and their current values.
  """
  variables = list(model.non_trainable_variables)
  return variables, [tf.identity(v) for v in variables]


def restore_unless_finite(state, finite):
  """Assigns the values of `forward_state` back when the step is not `finite`.

  With `apply_if_finite` a skipped step leaves the whole model as it was, BatchNorm statistics
  included. The assignment is unconditional (a select between the current and saved values, no
  branch), so it runs in the replica context exactly as BatchNorm's own update does, under every
  strategy; its cost is one small assignment per non-trainable variable and step.

  Args:
    state: ``(variables, values)`` from `forward_state`.
    finite: scalar bool, identical on all replicas (`step_is_finite`).
  """
  for variable, saved in zip(*state):
    variable.assign(tf.where(finite, tf.convert_to_tensor(variable), saved))


def step_logs(step_metrics):
  """`{metric name: result}` returned by a custom `train_step` / `test_step`.

  Multi-worker: Keras 3 reduces step outputs with `strategy.reduce("MEAN", v, axis=0)`
  (`keras/src/backend/tensorflow/trainer.py::reduce_per_replica`), which rejects scalars; the
  results are returned as `(1,)` there, and that reduction turns them back into scalars.
  """
  logs = {m.name: m.result() for m in step_metrics}
  extended = tf.distribute.get_strategy().extended
  if getattr(extended, "_in_multi_worker_mode", lambda: False)():
    logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
  return logs


def _with_non_finite_check(callbacks):
  """``callbacks`` + a `NonFiniteLossCheck` unless one is present. A `CallbackList` is passed on
  as it is: `fit` hands its own (which has the check) to the validation `evaluate`."""
  if isinstance(callbacks, keras.callbacks.CallbackList):
    return callbacks
  callbacks = list(callbacks or [])
  if not any(isinstance(c, NonFiniteLossCheck) for c in callbacks):
    callbacks.append(NonFiniteLossCheck())
  return callbacks


class GuardedFitMixin:
  """`fit` that never trains on NaN and `evaluate` that never reports a NaN loss: both append
  `NonFiniteLossCheck` unless one is present.

  Shared by every tfdepth trainer (`class M(GuardedFitMixin, keras.Model)`). `shuffle` defaults
  to False: tfdepth pipelines shuffle (deterministically) themselves.
  """

  def fit(self, *args, callbacks=None, **kwargs):
    kwargs.setdefault("shuffle", False)
    return super().fit(*args, callbacks=_with_non_finite_check(callbacks), **kwargs)

  def evaluate(self, *args, callbacks=None, **kwargs):
    return super().evaluate(*args, callbacks=_with_non_finite_check(callbacks), **kwargs)


class MultiWorkerFitMixin:
  """Makes a custom-`train_step` `keras.Model` trainable under MultiWorkerMirroredStrategy.

  Use as `class M(MultiWorkerFitMixin, keras.Model)` and return `step_logs(self.metrics)` from
  the steps. Keras 3 (`keras/src/backend/tensorflow/trainer.py::_maybe_symbolic_build`) takes
  one batch from the training iterator before `fit` and `strategy.reduce`s it:
  MultiWorkerMirroredStrategy raises ValueError on a dict batch, and the drawn batch is never
  trained on. A built model compiled without Keras losses / metrics needs no data to finish
  building, so the iterator is not touched then.
  """

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    if (self._compile_loss is None and self._compile_metrics is None
        and all(layer.built for layer in self._flatten_layers())):
      iterator = None
    return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


@keras.saving.register_keras_serializable(package="tfdepth")
class SupervisedDepthModel(GuardedFitMixin, MultiWorkerFitMixin, keras.Model):
  """Trains a depth network with a weighted sum of supervised loss terms.

  Args:
    network: `keras.Model`, image `(B, H, W, 3)` float32 [0, 1] -> dict with `"depth"`
      `(B, h, w, 1)` metres (other keys for ordinal/classification terms). A depth map of another
      size than the ground truth is resized (bilinear, half-pixel centres) before losses/metrics.
    loss_terms: sequence of `LossTerm` (or `(name, weight[, fn])` tuples).
    depth_metrics: streaming `keras.metrics.Metric`s (e.g. `tfdepth.metrics.standard_metrics`)
      updated as `m.update_state(depth_true, depth_pred)` on every train and test step; the
      metric applies its own validity mask (depth > 0) / protocol.
    max_depth: optional float, metres; ground truth beyond it is also masked out of the losses.
  """

  def __init__(self, network, loss_terms, depth_metrics=(), max_depth=None, **kwargs):
    super().__init__(**kwargs)
    if not isinstance(network, keras.Model):
      raise InvalidInputError(
          f"SupervisedDepthModel expected a keras.Model network, received {type(network)}")
    if max_depth is not None and not max_depth > 0:
      raise InvalidInputError(f"max_depth must be positive or None, received {max_depth!r}")
    self.network = network
    self.loss_terms = _as_loss_terms(loss_terms)
    self._loss_fns = [t.resolved_fn() for t in self.loss_terms]
    self.max_depth = max_depth
    self.total_tracker = keras.metrics.Mean(name=TOTAL_LOSS_NAME)
    self.term_trackers = [keras.metrics.Mean(name=t.name + TERM_SUFFIX) for t in self.loss_terms]
    self.depth_metrics = list(depth_metrics)

  # ---------------------------------------------------------------- keras plumbing
  @property
  def metrics(self):
    return [self.total_tracker] + self.term_trackers + self.depth_metrics

  def call(self, inputs, training=False):
    if isinstance(inputs, Mapping):
      inputs = inputs["image"]
    outputs = self.network(inputs, training=training)
    if not isinstance(outputs, Mapping):
      outputs = {"depth": outputs}
    return outputs

  def get_config(self):
    return {
        **super().get_config(),
        "network": keras.saving.serialize_keras_object(self.network),
        "loss_terms": [(t.name, t.weight) for t in self.loss_terms],
        "max_depth": self.max_depth,
    }

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["network"] = keras.saving.deserialize_keras_object(config["network"])
    return cls(**config)

  # ---------------------------------------------------------------- steps
  @staticmethod
  def _unpack(data):
    """Splits a batch into (image, ground-truth dict)."""
    if isinstance(data, Mapping):
      return data["image"], data
    if isinstance(data, (tuple, list)) and len(data) >= 2:
      x, y = data[0], data[1]
      if isinstance(x, Mapping):
        x = x["image"]
      if not isinstance(y, Mapping):
        y = {"depth": y}
      return x, y
    raise InvalidInputError(
        "SupervisedDepthModel expected a batch dict with 'image' and 'depth' or an (image, depth) "
        f"tuple, received {type(data)}")

  def _prepare(self, y, y_pred):
    """Float32 predictions at ground-truth size and the validity mask `(B, H, W, 1)`."""
    depth_true = tf.cast(y["depth"], tf.float32)
    preds = {k: tf.cast(v, tf.float32) for k, v in y_pred.items()}
    depth_pred = preds["depth"]
    if depth_pred.shape[1:3] != depth_true.shape[1:3]:
      depth_pred = tf.image.resize(depth_pred, tf.shape(depth_true)[1:3], method="bilinear")
      preds["depth"] = depth_pred
    valid = depth_true > 0.0
    if self.max_depth is not None:
      valid = tf.logical_and(valid, depth_true <= self.max_depth)
    mask = tf.cast(valid, tf.float32)
    return depth_true, preds, mask

  def compute_loss_terms(self, y, y_pred):
    """Per-replica weighted total and the list of un-weighted per-term losses (float32 scalars).

    Each term is already divided by the global batch size (see `_global_batch_mean`).
    """
    _, preds, mask = self._prepare(y, y_pred)
    terms = []
    for term, fn in zip(self.loss_terms, self._loss_fns):
      if term.prediction_key not in preds:
        raise InvalidInputError(
            f"loss term {term.name!r} needs network output {term.prediction_key!r}; the network "
            f"returned {sorted(preds)}")
      args = [preds[term.prediction_key]]
      if term.target_key is not None:
        args.append(tf.cast(y[term.target_key], tf.float32))
      kwargs = dict(term.kwargs)
      kwargs.update({arg: y[key] for arg, key in term.target_kwargs.items()})
      if term.use_mask:
        kwargs["mask"] = mask
      per_image = fn(*args, **kwargs)
      terms.append(_global_batch_mean(per_image))
    total = tf.add_n([tf.constant(t.weight, tf.float32) * v
                      for t, v in zip(self.loss_terms, terms)])
    if self.losses:  # regularisers of the network, as Keras' compute_loss does
      reg = tf.add_n([tf.cast(tf.reduce_sum(l), tf.float32) for l in self.losses])
      total += reg / tf.cast(_num_replicas(), tf.float32)
    return total, terms

  def _update_trackers(self, total, terms, batch_size):
    replicas = tf.cast(_num_replicas(), tf.float32)
    self.total_tracker.update_state(total * replicas, sample_weight=batch_size)
    for tracker, value in zip(self.term_trackers, terms):
      tracker.update_state(value * replicas, sample_weight=batch_size)

  def _update_metrics(self, y, y_pred, finite=None):
    """Updates the depth metrics; with `finite` (scalar bool) only when it is True."""
    if not self.depth_metrics:
      return
    depth_true, preds, _ = self._prepare(y, y_pred)
    update_metrics_if(finite, self.depth_metrics, depth_true, preds["depth"])

  def train_step(self, data):
    x, y = self._unpack(data)
    batch_size = tf.shape(x)[0]
    state = forward_state(self)
    with tf.GradientTape() as tape:
      y_pred = self(x, training=True)
      total, terms = self.compute_loss_terms(y, y_pred)
      scaled = self.optimizer.scale_loss(total) if hasattr(self.optimizer, "scale_loss") else total
    variables = self.trainable_variables
    grads = tape.gradient(scaled, variables)
    # Never train on a non-finite step (a loss term, the predicted depth or a gradient, on any
    # replica): the update is skipped entirely; NonFiniteLossCheck then stops training.
    finite = step_is_finite(self.optimizer, grads, total, terms, y_pred["depth"])
    apply_if_finite(self.optimizer, clip_across_replicas(self.optimizer, grads), variables, finite)
    restore_unless_finite(state, finite)
    self._update_trackers(mark_non_finite(total, finite), terms, batch_size)
    self._update_metrics(y, y_pred, finite)
    return step_logs(self.metrics)

  def test_step(self, data):
    x, y = self._unpack(data)
    y_pred = self(x, training=False)
    total, terms = self.compute_loss_terms(y, y_pred)
    # A non-finite prediction or loss shows as a NaN loss (NonFiniteLossCheck raises a typed
    # error) and does not reach the depth metrics, whose in-graph assertion would fail first.
    finite = all_finite(total, terms, y_pred["depth"])
    self._update_trackers(mark_non_finite(total, finite), terms, tf.shape(x)[0])
    self._update_metrics(y, y_pred, finite)
    return step_logs(self.metrics)

  def predict_step(self, data):
    x = data["image"] if isinstance(data, Mapping) else (
        data[0] if isinstance(data, (tuple, list)) else data)
    return {k: tf.cast(v, tf.float32) for k, v in self(x, training=False).items()}


# Under mixed_float16, Keras' LossScaleOptimizer skips a step with non-finite gradients and halves
# its loss scale (initial 2**15). Overflow of the scaled gradients stops below some scale; at a
# scale under 1 the gradients are no longer scaled up, so non-finite ones are not an fp16
# overflow but NaN/inf from the model or loss, and every step from then on is skipped silently.
MIN_LOSS_SCALE = 1.0


def _non_finite_terms(logs):
  """``{name: value}`` of the non-finite loss entries (total and ``*_loss`` terms) of ``logs``;
  only the total when every term is finite."""
  bad = {}
  for key, value in (logs or {}).items():
    if key == TOTAL_LOSS_NAME or key.endswith(TERM_SUFFIX):
      v = float(value)
      if not math.isfinite(v):
        bad[key] = v
  return {k: v for k, v in bad.items() if k != TOTAL_LOSS_NAME} or bad


class NonFiniteLossCheck(keras.callbacks.Callback):
  """Raises `NonFiniteError` at the end of the first training or evaluation batch whose loss is
  NaN or inf.

  The per-term trackers are running means over the epoch, so they turn non-finite exactly at the
  first bad step. The message names the global step (1-based: the tfdepth trainers do not apply a
  non-finite step, so it is the optimizer's iterations + 1), the epoch and batch (0-based), and
  every non-finite term (only "loss" when the predicted depth or a gradient was non-finite under
  finite terms). In evaluation (`fit`'s validation or `evaluate`), the tfdepth trainers' loss is
  NaN when the predicted depth is non-finite; the message names the evaluation batch.

  Under a `LossScaleOptimizer` (mixed_float16), whose skipped steps (non-finite gradients under
  a finite loss) leave no trace in the logs, it also raises once the loss scale falls below
  `MIN_LOSS_SCALE`.
  """

  def __init__(self):
    super().__init__()
    self._epoch = 0
    self._steps = 0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    self._steps += 1
    self._check_loss_scale(batch)
    terms = _non_finite_terms(logs)
    if terms:
      step = (int(self.model.optimizer.iterations.numpy()) + 1 if self.model.optimizer
              else self._steps)
      raise NonFiniteError(
          f"non-finite training loss at global step {step} (epoch {self._epoch}, batch {batch}): "
          f"term(s) {sorted(terms)} = {terms}; this step was not applied (weights and optimizer "
          "state unchanged). Expected finite losses and predicted depth: check the data (NaN/inf "
          "depth or images), the learning rate and the loss configuration.")

  def _check_loss_scale(self, batch):
    optimizer = getattr(self.model, "optimizer", None)
    if not (optimizer is not None and is_loss_scale_optimizer(optimizer) and optimizer.built):
      return
    scale = float(optimizer.dynamic_scale.numpy())
    if scale < MIN_LOSS_SCALE:
      raise NonFiniteError(
          f"mixed_float16 loss scale fell to {scale:g} (below {MIN_LOSS_SCALE:g}) at epoch "
          f"{self._epoch}, batch {batch}, optimizer step {int(optimizer.iterations.numpy())}: the "
          "LossScaleOptimizer skipped many steps whose gradients were NaN or inf under a finite "
          "loss, which at this scale is not an fp16 overflow. Expected finite gradients: check "
          "the loss for NaN-gradient operations (sqrt / log / division at 0) and the data; "
          "`train.mixed_precision=mixed_bfloat16` or float32 train without a loss scale.")

  def on_test_batch_end(self, batch, logs=None):
    terms = _non_finite_terms(logs)
    if terms:
      raise NonFiniteError(
          f"non-finite evaluation loss at evaluation batch {batch} (0-based): term(s) "
          f"{sorted(terms)} = {terms}. Expected finite images, depth and predicted depth: check "
          "the evaluation data (NaN/inf images or depth at valid pixels) and, if the data are "
          "finite, the model's weights.")


def loss_terms_from_config(loss_configs):
  """Builds `LossTerm`s from experiment `LossConfig`s (objects with name/weight/... fields)."""
  terms = []
  for c in loss_configs:
    terms.append(LossTerm(
        name=c.name, weight=float(c.weight), fn=None,
        prediction_key=getattr(c, "prediction_key", "depth"),
        target_key=getattr(c, "target_key", "depth") or None,
        kwargs=dict(getattr(c, "kwargs", {}) or {}),
        target_kwargs=dict(getattr(c, "target_kwargs", {}) or {}),
        use_mask=bool(getattr(c, "use_mask", True))))
  return terms
