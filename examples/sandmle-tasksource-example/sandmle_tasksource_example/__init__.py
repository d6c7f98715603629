"""A task source that turns scikit-learn's bundled datasets into tasks."""
