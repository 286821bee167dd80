"""`python -m agp.cli ...`: the `agp` command, for when its script is not on PATH."""

from agp.cli import main

main(prog_name="agp")
