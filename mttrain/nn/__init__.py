"""Network pieces: the multitask head, model and loss."""
