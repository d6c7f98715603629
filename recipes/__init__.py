"""Recipes shipped as package data (``importlib.resources.files("sandmle.recipes")``)."""
