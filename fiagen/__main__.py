"""`python -m fiagen` is the `fiagen` command."""

from fiagen.cli.main import main

main()
