"""Segment features: cutting songs into segments and encoding audio and lyrics segments into vectors."""
