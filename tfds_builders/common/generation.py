"""Example generation as a plain Python generator or, on request, an Apache Beam transform.

Each builder lists its work items (small, picklable tuples) and processes one item into one
`(key, example)` with a pure function. `generate` runs that function in-process, or, when
`use_beam` is True, returns `beam.Create(items) | beam.Map(fn)`, which TFDS runs on the Beam
runner given in `tfds.download.DownloadConfig(beam_runner=..., beam_options=...)` (TFDS guide
"Generating big datasets with Apache Beam"). Apache Beam is an optional dependency.
"""

from typing import Callable, Iterable, Sequence


def generate(items: Sequence, process: Callable, use_beam: bool = False,
             label: str = "process") -> Iterable:
  """Yields `process(item)` for each item, or returns the equivalent Beam transform."""
  if not use_beam:
    return (process(item) for item in items)
  try:
    import apache_beam as beam  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "use_beam=True needs Apache Beam: `pip install apache-beam`, or build without Beam."
    ) from e
  return beam.Create(list(items)) | label >> beam.Map(process)
