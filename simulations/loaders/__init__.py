"""Readers of real data sets in their published layouts (no download at run time)."""
