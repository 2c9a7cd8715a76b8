"""Tests of the recommender package."""
