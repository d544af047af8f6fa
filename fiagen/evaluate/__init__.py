"""Evaluation: frame scoring, metrics, perturbations, tables and plots, the suite runner."""
