"""``python -m clipforge`` (and ``torchrun -m clipforge``) runs the CLI."""

from .cli.main import main

main()
