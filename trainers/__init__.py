"""Trainers (Keras Model subclasses with custom train_step), experiment registry, entry points."""
