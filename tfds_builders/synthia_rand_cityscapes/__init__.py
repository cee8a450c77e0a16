"""SYNTHIA-RAND-CITYSCAPES TFDS builder (RGB, 16-bit depth, 16-bit class labels)."""
