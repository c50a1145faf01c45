"""Data files shipped with bootlab (firmware names, ...)."""
