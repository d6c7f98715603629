"""A backend that replays the model turns of a saved trajectory."""
