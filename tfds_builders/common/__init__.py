"""Readers shared by the tfdepth TFDS builders (stand-alone: nothing here imports `tfdepth`).

Modules:
- `errors`: typed errors whose messages name the file and what to do.
- `images`: 16-bit PNG decoding (never through 8-bit paths), exact JPEG decoding, PNG encoding.
- `kitti_calib`: KITTI calibration text files (`calib_cam_to_cam.txt`, `calib_velo_to_cam.txt`).
- `lidar`: Velodyne `.bin` reading and LiDAR-to-depth projection as in the standard KITTI evaluation.
- `archives`: archive extraction (any `tf.io.gfile` path) that refuses members outside the target.
- `generation`: example generation as a plain generator or as an Apache Beam transform.
- `manual`: the manual directory, with `MissingFileError` and the instructions when absent / empty.
"""
