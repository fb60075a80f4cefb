"""Run under ``mpiexec -n 2``: data-parallel training over MPI against one process.

Every rank takes its share of the machine's cores and trains on its shard
through an MpiCommunicator; rank 0 also
trains the whole batch alone and writes the comparison to the JSON file
named on the command line.  Finally rank 1 stays away from an all-reduce,
and rank 0 must time out with a clear error instead of hanging.
"""
import json
import sys
import tempfile

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from test_parallel import batches, make_trainer, max_relative_difference  # noqa: E402

from minivgg.parallel import CommunicatorError, MpiCommunicator, share_cores  # noqa: E402


def train(communicator, dtype, workdir):
    trainer = make_trainer(workdir, dtype, communicator)
    for x, y in batches(dtype):
        trainer.train_step(x, y)
    return trainer


def main(out_path):
    communicator = MpiCommunicator(timeout=30)
    workdir = tempfile.mkdtemp()
    result = {"ranks": communicator.size, "ranks_here": communicator.ranks_here,
              "threads_each": share_cores(communicator.ranks_here), "waits_spin": communicator.spin_seconds > 0}
    for dtype in (np.float64, np.float32):
        split = train(communicator, dtype, workdir)
        weights = list(split.model.state_dict().values())
        gathered = communicator.comm.gather(weights, root=0)
        if communicator.rank == 0:
            single = list(train(None, dtype, workdir).model.state_dict().values())
            name = np.dtype(dtype).name
            result[f"{name}_relative_difference"] = max_relative_difference(weights, single)
            result.setdefault("replicas_identical", True)
            result["replicas_identical"] &= all(
                all(np.array_equal(a, b) for a, b in zip(other, weights)) for other in gathered)
    communicator.comm.Barrier()
    stuck = MpiCommunicator(communicator.comm.Dup(), timeout=2)
    if stuck.rank == 0:
        try:
            stuck.allreduce_sum(np.ones(4))
        except CommunicatorError as error:
            result["stuck_rank_error"] = str(error)
        with open(out_path, "w") as out:
            json.dump(result, out)
    sys.stdout.flush()
    stuck.comm.Abort(0) if stuck.rank == 0 else __import__("time").sleep(30)


if __name__ == "__main__":
    main(sys.argv[1])
