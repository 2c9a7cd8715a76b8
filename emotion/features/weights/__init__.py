"""Converted model weights shipped as package data (musicnn MSD, ISC licence in LICENSE-musicnn.md)."""
