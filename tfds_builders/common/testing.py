"""Test helpers shared by the builder tests (imported by `*_dataset_builder_test.py` only).

`BuilderTestCase` is `tfds.testing.DatasetBuilderTestCase` with two adjustments:
- TFDS GCS look-ups are disabled (the tests run without network);
- `tf.test.TestCase.test_session` (a context manager TFDS's graph-mode sub-test calls) is exposed
  as a property, so that test runners do not collect it as a test that then skips itself with
  "Not a test.".
Refer to it as `builder_testing.BuilderTestCase` (not imported by name) so that pytest does not
collect the base class itself.
"""

import functools

import tensorflow as tf
import tensorflow_datasets as tfds

tfds.core.utils.gcs_utils._is_gcs_disabled = True  # pylint: disable=protected-access


class BuilderTestCase(tfds.testing.DatasetBuilderTestCase):
  """`DatasetBuilderTestCase` without GCS access and without the spurious `test_session` skip."""

  @property
  def test_session(self):  # pylint: disable=invalid-overridden-method
    return functools.partial(tf.test.TestCase.test_session, self)
