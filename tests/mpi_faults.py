"""Run under ``mpiexec``: examples/train_vgg_a.py with one fault injected into one rank.

    mpiexec -n 2 python tests/mpi_faults.py FAULT RANK STEP -- <train_vgg_a.py flags>

FAULT is ``raise`` (an exception in training step STEP), ``stop`` (the rank
sends itself SIGSTOP, as ``kill -STOP`` would, at step STEP) or ``stop-at-end``
(SIGSTOP in the final test evaluation, after training; STEP is ignored).
Before the fault the rank prints ``FAULT <fault> rank <r> at <unix time>`` to
stderr, so that a test can measure how long the job takes to end after it.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scripts import load_example  # noqa: E402


def strike(fault, rank):
    print(f"FAULT {fault} rank {rank} at {time.time():.3f}", file=sys.stderr, flush=True)
    if fault == "raise":
        raise RuntimeError(f"injected fault on rank {rank}")
    os.kill(os.getpid(), signal.SIGSTOP)


def inject(fault, rank, step):
    """Patch the Trainer so that rank ``rank`` meets ``fault`` at training step ``step`` (or at the end)."""
    from minivgg.train import Trainer
    train_step, evaluate = Trainer.train_step, Trainer.evaluate

    def faulty_train_step(self, x, labels):
        if fault in ("raise", "stop") and self.communicator.rank == rank and self.step == step:
            strike(fault, rank)
        return train_step(self, x, labels)

    def faulty_evaluate(self, loader, *args):
        if fault == "stop-at-end" and self.communicator.rank == rank and loader is not self.val_loader:
            strike(fault, rank)
        return evaluate(self, loader, *args)

    Trainer.train_step, Trainer.evaluate = faulty_train_step, faulty_evaluate


def main(argv):
    fault, rank, step, separator, *flags = argv
    if fault not in ("raise", "stop", "stop-at-end") or separator != "--":
        raise SystemExit(__doc__)
    script = load_example("train_vgg_a")
    inject(fault, int(rank), int(step))
    script.main(flags)


if __name__ == "__main__":
    main(sys.argv[1:])
