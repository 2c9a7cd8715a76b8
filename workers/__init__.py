"""Workers: the Celery pipeline from crawl to playlist."""
