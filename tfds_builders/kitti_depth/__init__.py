"""KITTI depth TFDS builder (configs eigen, eigen_lidar_x, eigen_benchmark, eigen_zhou)."""
