"""Tests of the crawler package."""
