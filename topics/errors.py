"""Errors raised by the topics pipeline."""

from __future__ import annotations


class TopicsError(RuntimeError):
    """A topic model cannot be built, loaded or used; the message names the problem."""


class NoFramesError(TopicsError):
    """A song yields no usable frame descriptors (missing/corrupt audio, too short, all non-finite)."""
