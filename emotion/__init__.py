"""Emotion: segment features, song emotion models, training, evaluation and labelling."""
