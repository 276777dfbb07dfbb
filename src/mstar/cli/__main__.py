"""`python -m mstar.cli` is `mstar`."""

from mstar.cli import main

main()
