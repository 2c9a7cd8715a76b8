"""Tests of the topics package."""
