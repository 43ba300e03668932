"""The error every densedino dataset, transform and check raises for a bad folder or file."""


class DatasetError(ValueError):
    """A dataset folder or file that cannot be used; the message names it."""
