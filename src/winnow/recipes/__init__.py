"""Recipes: YAML method definitions, their validation and the runner of their stages."""
