"""User-facing errors: one line that names the file, key or value, and the fix."""


class PixelwiseError(Exception):
    """Bad input from the user. The command line prints it as one line and exits with status 2.

    Raised in a DataLoader worker, torch re-raises it in the main process with the worker's traceback
    as its message; the message is cut back to the original line, so the user still reads one line.
    """

    def __init__(self, message: str = "", *args):
        if "Original Traceback" in message:
            last = [line for line in message.strip().splitlines() if line.strip()][-1]
            message = last.split("PixelwiseError: ", 1)[-1]
        super().__init__(message, *args)
