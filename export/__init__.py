"""Export of tfdepth models: SavedModel with serving signatures, TFLite (float / int8), QAT."""
