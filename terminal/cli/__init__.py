"""The ``etika`` command: the one place where every package is wired together."""
