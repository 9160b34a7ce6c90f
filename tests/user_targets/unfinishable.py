"""A user module whose target cannot be derived: importing it must fail fast, in one line."""

from optbench import Target

t = Target("t", "x**5000 - x", start=[0.5])  # refused up front (Bezout bound 4999), not after minutes
