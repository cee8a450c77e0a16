"""NYU Depth V2 labeled-subset TFDS builder (1449 frames, official 795/654 split)."""
