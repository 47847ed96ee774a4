"""Downstream task data: the task vocabulary, and (as it moves here) rows, labels and the split loaders."""
