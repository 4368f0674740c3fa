"""Hostile-input tests: a package, so its ``helpers`` module cannot clash with another folder's."""
