"""The analysis tasks, each writing a run folder like ``edm-bench run``:

* :func:`run_boltzmann` - MCMC with the oracle vs the repeated diffusion step (section 4.4)
* :func:`run_phases`    - phase metrics along de novo generation (section 4.1)
* :func:`run_generation` - EDM's sample-quality metrics

Tasks stay pure functions in :mod:`bench.tasks`; these modules load denoisers,
fan oracle work out, and write tables, summaries, figures and reports.
"""

from bench.analyses.boltzmann import PROFILES, BoltzmannSettings, run_boltzmann
from bench.analyses.generation import QUICK_MOLECULES, GenerationSettings, run_generation, run_phases

__all__ = ["PROFILES", "BoltzmannSettings", "run_boltzmann", "QUICK_MOLECULES", "GenerationSettings",
           "run_generation", "run_phases"]
