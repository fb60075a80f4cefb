"""Argument checks shared by the differentiable operations."""


def check_ndim(name, what, array, ndim, layout):
    """Raise a ValueError unless ``array`` has ``ndim`` axes."""
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected {what} of {ndim} dimensions {layout}, got shape {tuple(array.shape)}")
