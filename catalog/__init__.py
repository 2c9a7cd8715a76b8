"""Catalog: settings, database models, file store, audio input and dataset manifests."""
