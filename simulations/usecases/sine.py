"""Sine regression use case (Reptile papers setup)."""
