"""A generator of small synthetic linear classification tasks."""
