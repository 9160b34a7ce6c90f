"""Optimizers with planted bugs (``bugs.py``), one bug each, and a correct hand-written one (``correct.py``)."""
