"""Recommender: speech emotion, recommendation sessions and the HTTP API."""
