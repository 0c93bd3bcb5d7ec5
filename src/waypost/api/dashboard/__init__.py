"""The dashboard, served with the API by `waypost serve` (pages.py)."""
