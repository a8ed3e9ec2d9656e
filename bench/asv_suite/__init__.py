"""airspeed velocity benchmarks (``asv run``; see asv.conf.json). Not imported by the package.

Every benchmark process runs with one OpenMP thread unless ``OMP_NUM_THREADS`` says
otherwise: on a shared 2-core machine a second thread fighting another job makes
the network ~10-100x slower (oversubscribed OpenMP), and a fixed thread count
keeps commits and machines comparable. It is set here, before any benchmark
imports torch or the C++ extension, because each reads it once when its OpenMP
runtime loads (torch and the extension carry separate runtimes, so
``torch.set_num_threads`` would not reach the extension).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
