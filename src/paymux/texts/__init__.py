"""The texts editor: database overrides of the back office's shipped translations."""
