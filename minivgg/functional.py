"""``import minivgg.functional as F``: every differentiable operation in one namespace."""
from .functions import *  # noqa: F401,F403  (the public list is functions.__all__)
from .functions import __all__  # noqa: F401
