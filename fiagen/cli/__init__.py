"""The `fiagen` command line: the group, one module per group of commands, and options built from settings."""
