"""`tfds.testing.DatasetBuilderTestCase` for `nyu_depth_v2_labeled` on `dummy_data/`.

`dummy_data/make_dummy_data.py` writes a 6-frame MATLAB v7.3 .mat and a MATLAB-5 splits.mat with
1-based trainNdxs = [1, 3, 4], testNdxs = [2, 5, 6] -> train 3, test 3.
"""

import tensorflow_datasets as tfds

from tfds_builders.common import testing as builder_testing
from tfds_builders.nyu_depth_v2_labeled import nyu_depth_v2_labeled_dataset_builder as nyu


class NyuDepthV2LabeledManualTest(builder_testing.BuilderTestCase):
  """Files placed in the manual directory: no download."""
  DATASET_CLASS = nyu.Builder
  SPLITS = {"train": 3, "test": 3}


class NyuDepthV2LabeledDownloadTest(builder_testing.BuilderTestCase):
  """Manual directory without the files: both are downloaded (mocked to the dummy files)."""
  DATASET_CLASS = nyu.Builder
  EXAMPLE_DIR = str(nyu.epath.Path(nyu.__file__).parent / "dummy_data" / "download_only")
  DL_DOWNLOAD_RESULT = {"labeled": "../nyu_depth_v2_labeled.mat", "splits": "../splits.mat"}
  SPLITS = {"train": 3, "test": 3}
  # The sha256 of the two official files cannot be computed offline (see checksums.tsv); the
  # URLs requested are checked in tests/test_builders_nyu.py instead.
  SKIP_CHECKSUMS = True


if __name__ == "__main__":
  tfds.testing.test_main()
