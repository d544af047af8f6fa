"""`fiagen run` and `fiagen demo`: a pipeline file's stages, variants side by side and their table, the
embedded sample."""
