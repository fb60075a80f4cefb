"""Floor 3: the optimiser and learning-rate schedule of the paper."""
from .schedule import PlateauSchedule
from .sgd import SGD

__all__ = ["PlateauSchedule", "SGD"]
