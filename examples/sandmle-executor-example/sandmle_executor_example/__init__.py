"""An executor that runs episodes one at a time, in order."""
