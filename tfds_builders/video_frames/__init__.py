"""TFDS builder turning a user's own image sequences into (t-1, t, t+1) training clips."""
