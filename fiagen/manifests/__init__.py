"""Where data lives: training sources, evaluation suites, shipped split lists, manifest schema."""
