"""Rank 0 never hands over the run: the client ranks must end the job after the (shortened) timeout.

Usage: mpiexec -n 3 python tests/mpi/handover_timeout.py
"""
import time

from mpi4py import MPI

from huscf_mpi import launch

launch.HANDOVER_TIMEOUT_S = 2.0

if MPI.COMM_WORLD.Get_rank() == 0:
    time.sleep(60)  # stuck before the hand-over
else:
    launch.client_main()
