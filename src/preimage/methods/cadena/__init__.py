"""Cadena et al. 2018: diverse feature visualizations and the invariance indices built on them."""
