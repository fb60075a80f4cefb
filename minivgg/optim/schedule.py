"""The paper's learning-rate schedule: divide by 10 when validation accuracy stops improving.

Section 3.1: "the learning rate was initially set to 1e-2, and then
decreased by a factor of 10 when the validation set accuracy stopped
improving.  In total, the learning rate was decreased 3 times".  Here
"stopped improving" means: no new best accuracy for ``patience`` epochs.
After the last allowed decrease, the next plateau ends training.
"""


class PlateauSchedule:
    """Call ``step(val_accuracy)`` after each epoch; it updates ``optimizer.lr`` and says whether to go on."""

    def __init__(self, optimizer, factor=0.1, patience=1, max_decreases=3):
        if not 0 < factor < 1 or patience < 1 or max_decreases < 0:
            raise ValueError(f"PlateauSchedule: expected 0 < factor < 1, patience >= 1, max_decreases >= 0, "
                             f"got factor={factor}, patience={patience}, max_decreases={max_decreases}")
        self.optimizer, self.factor = optimizer, factor
        self.patience, self.max_decreases = patience, max_decreases
        self.best, self.epochs_since_best, self.decreases = None, 0, 0
        self.finished = False

    def step(self, accuracy):
        """Record one epoch's validation accuracy; returns False once training should stop."""
        if self.best is None or accuracy > self.best:
            self.best, self.epochs_since_best = accuracy, 0
            return True
        self.epochs_since_best += 1
        if self.epochs_since_best < self.patience:
            return True
        if self.decreases == self.max_decreases:
            self.finished = True
            return False
        self.optimizer.lr *= self.factor
        self.decreases += 1
        self.epochs_since_best = 0
        return True

    def state_dict(self):
        return {"best": self.best, "epochs_since_best": self.epochs_since_best,
                "decreases": self.decreases, "finished": self.finished}

    def load_state_dict(self, state):
        for key in ("best", "epochs_since_best", "decreases", "finished"):
            setattr(self, key, state[key])
