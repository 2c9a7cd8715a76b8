"""Crawler: Scrapy spiders and pipelines that ingest songs into the catalog."""
