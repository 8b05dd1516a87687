"""User-facing errors: one line that names the file, key or value, and the fix."""


class PixelwiseError(Exception):
    """Bad input from the user. The command line prints it as one line and exits with status 2."""
