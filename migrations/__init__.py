"""Alembic environment for the musicrec catalog."""
