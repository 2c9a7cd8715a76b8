"""Spiders: `site` (rule files), `jamendo` (API v3.0), `directory` (autoindex or feed)."""
