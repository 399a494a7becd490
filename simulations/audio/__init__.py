"""Keyword audio for simulations: the Speech Commands folder layout (loader) and a
corpus in that layout spoken by espeak-ng (generator), both cached as q15 MFCCs."""
