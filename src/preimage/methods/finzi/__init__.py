"""Finzi: how far to trust a visualization (reliability) and the design-choice studies."""
