"""`python -m fiagen` is the `fiagen` command."""

from fiagen.cli import main

main()
