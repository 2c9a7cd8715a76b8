"""Tests of the emotion package."""
