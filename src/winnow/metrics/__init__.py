"""Measures of a subset: lexical and embedding diversity."""
