"""`python -m pixelwise.cli ...` (e.g. under torchrun) is the `pixelwise` command."""
import sys

from pixelwise.cli import main

sys.exit(main())
