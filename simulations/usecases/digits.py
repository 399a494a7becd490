"""Handwritten digits use case (scikit-learn digits, rotations as extra classes)."""
