"""Command-line commands of this part (to be written)."""


def add_commands(subparsers) -> None:
    """Add this part's commands to the `pixelwise` parser."""
