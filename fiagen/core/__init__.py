"""Small utilities every stage shares: errors, files, output folders, messages, stops, progress, settings."""
