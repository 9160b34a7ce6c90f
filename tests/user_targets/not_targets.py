"""Objects that are not Targets, for the --target error tests."""

number = 3
things = [1, 2]


def raises():
    raise RuntimeError("boom")
