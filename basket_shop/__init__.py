"""Basket & Co, the second shop the harness is proven on (see app.py)."""
