"""The paper's learning-rate schedule: divide by 10 when validation accuracy stops improving.

Section 3.1: "the learning rate was initially set to 1e-2, and then
decreased by a factor of 10 when the validation set accuracy stopped
improving.  In total, the learning rate was decreased 3 times".  Here
"stopped improving" means: no new best accuracy for ``patience`` epochs.
After the last allowed decrease, the next plateau ends training.

The paper trained for 74 epochs, and three plateaus came.  A short run may
see none: the validation accuracy of the 10-epoch default run can reach a
new best every other epoch to the end, and then never gets the cut rate's
last few points.  With ``final_cut = k``, a rate never cut by the time only
``k`` epochs are left is cut then (pass ``epochs_left`` to ``step``).
"""


class PlateauSchedule:
    """Call ``step(val_accuracy, epochs_left)`` after each epoch; it updates ``optimizer.lr`` and says whether
    to go on.  ``last_cut`` says why the last cut came: "plateau" or "final epochs"."""

    def __init__(self, optimizer, factor=0.1, patience=1, max_decreases=3, final_cut=0):
        if not 0 < factor < 1 or patience < 1 or max_decreases < 0 or final_cut < 0:
            raise ValueError(f"PlateauSchedule: expected 0 < factor < 1, patience >= 1, max_decreases >= 0, "
                             f"final_cut >= 0, got factor={factor}, patience={patience}, "
                             f"max_decreases={max_decreases}, final_cut={final_cut}")
        self.optimizer, self.factor = optimizer, factor
        self.patience, self.max_decreases, self.final_cut = patience, max_decreases, final_cut
        self.best, self.epochs_since_best, self.decreases = None, 0, 0
        self.finished, self.last_cut = False, None

    def step(self, accuracy, epochs_left=None):
        """Record one epoch's validation accuracy; returns False once training should stop."""
        improved = self.best is None or accuracy > self.best
        if improved:
            self.best, self.epochs_since_best = accuracy, 0
        else:
            self.epochs_since_best += 1
        if self.final_cut_due(epochs_left):
            self.cut("final epochs")
            return True
        if improved or self.epochs_since_best < self.patience:
            return True
        if self.decreases == self.max_decreases:
            self.finished = True
            return False
        self.cut("plateau")
        return True

    def final_cut_due(self, epochs_left):
        """Whether the rate, never cut, has only ``final_cut`` or fewer epochs left to train with."""
        return (self.decreases == 0 < self.max_decreases and epochs_left is not None
                and 0 < epochs_left <= self.final_cut)

    def cut(self, reason):
        self.optimizer.lr *= self.factor
        self.decreases += 1
        self.epochs_since_best = 0
        self.last_cut = reason

    def state_dict(self):
        return {"best": self.best, "epochs_since_best": self.epochs_since_best,
                "decreases": self.decreases, "finished": self.finished}

    def load_state_dict(self, state):
        for key in ("best", "epochs_since_best", "decreases", "finished"):
            setattr(self, key, state[key])
