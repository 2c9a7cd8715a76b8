"""Command-line interface: the `musicrec` console script."""
