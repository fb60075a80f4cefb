"""Stochastic gradient descent with momentum and weight decay, as in the VGG paper.

Section 3.1: mini-batch gradient descent with momentum 0.9 and an L2 penalty
of 5e-4 on the weights.  For every parameter p with gradient g and velocity v:

    v <- momentum * v - lr * (g + weight_decay * p)
    p <- p + v

The update runs in place, through the ``sgd_update`` kernel (one fused pass
on the GPU), so a step allocates no new parameter-sized arrays.
"""
from ..backend import device_of, get_array_module, move_array
from ..kernels import kernels_for


class SGD:
    """SGD with momentum and weight decay over a list of Parameters."""

    def __init__(self, parameters, lr=0.01, momentum=0.9, weight_decay=5e-4):
        self.parameters = list(parameters)
        if not self.parameters:
            raise ValueError("SGD: got an empty list of parameters")
        if not (0 < lr < float("inf") and 0 <= momentum < 1 and 0 <= weight_decay < float("inf")):  # NaN fails too
            raise ValueError(f"SGD: expected lr > 0, 0 <= momentum < 1 and weight_decay >= 0, all finite, "
                             f"got lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocities = [None] * len(self.parameters)

    def step(self):
        """Update every parameter that has a gradient, in place."""
        for index, parameter in enumerate(self.parameters):
            if parameter.grad is None:
                continue
            if self.velocities[index] is None:
                self.velocities[index] = get_array_module(parameter.data).zeros_like(parameter.data)
            kernels_for(parameter.data).sgd_update(parameter.data, parameter.grad, self.velocities[index],
                                                   self.lr, self.momentum, self.weight_decay)

    def zero_grad(self):
        for parameter in self.parameters:
            parameter.grad = None

    def state_dict(self):
        """Hyper-parameters and velocities (NumPy copies), for checkpoints."""
        velocities = [None if v is None else (v.get() if hasattr(v, "get") else v.copy()) for v in self.velocities]
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "velocities": velocities}

    def load_state_dict(self, state):
        if len(state["velocities"]) != len(self.parameters):
            raise ValueError(f"SGD.load_state_dict: the state has {len(state['velocities'])} velocities "
                             f"but the optimiser has {len(self.parameters)} parameters")
        self.lr, self.momentum, self.weight_decay = state["lr"], state["momentum"], state["weight_decay"]
        self.velocities = [None if v is None else velocity_like(p.data, v)
                           for v, p in zip(state["velocities"], self.parameters)]


def velocity_like(param, values):
    """``values`` in a new array with ``param``'s dtype, device and memory layout (what sgd_update needs)."""
    velocity = get_array_module(param).zeros_like(param)
    velocity[...] = move_array(values, device_of(param))
    return velocity
