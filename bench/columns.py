"""Column names and row statuses of every results table, in one place so tasks,
store, metrics and reports cannot drift apart. Units are part of the names."""

from enum import StrEnum


class Col(StrEnum):
    ID = "id"
    SMILES = "smiles"
    N_ATOMS = "n_atoms"
    METHOD = "method"
    #: The denoiser seed of a row; missing (NA) for deterministic methods.
    SEED = "seed"
    #: The denoiser's start step n (missing for baselines).
    START_STEP = "start_step"
    STATUS = "status"
    MESSAGE = "message"
    ENERGY_ABOVE_GROUND = "energy_above_ground_kcal_mol"
    RMSD_HEAVY = "rmsd_heavy_ang"
    RMSD_ALL = "rmsd_all_ang"
    #: BFGS steps of the oracle relaxation (ASE ``get_number_of_steps()``).
    ORACLE_STEPS = "oracle_steps"
    N_FORCE_CALLS = "n_force_calls"
    WALL_S = "wall_s"
    CONVERGED = "converged"
    RELAXED_ENERGY = "relaxed_energy_ev"
    RELAXED_RMSD_HEAVY = "relaxed_rmsd_heavy_ang"
    RELAXED_RMSD_ALL = "relaxed_rmsd_all_ang"
    SPEEDUP = "speedup"
    DELTA_E = "delta_e_kcal_mol"
    REFERENCE_ORACLE_STEPS = "reference_oracle_steps"
    #: Network evaluations the denoiser spent on the row's molecule (0 for baselines).
    NETWORK_EVALUATIONS = "network_evaluations"
    #: The method's own time for the row's molecule: a denoiser's evaluations x its measured
    #: time per evaluation, or a baseline's computation (a UFF or xTB pre-relaxation).
    DENOISER_S = "denoiser_s"
    #: The path table: a frame of the denoiser path, and how many reverse steps follow it.
    FRAME = "frame"
    STEPS_LEFT = "steps_left"
    PATH_GROUND_CONVERGED = "path_ground_converged"
    #: The stability table (EDM's bond rule on each method's structure).
    N_ATOMS_STABLE = "n_atoms_stable"
    MOLECULE_STABLE = "molecule_stable"
    VALID = "valid"


class Status(StrEnum):
    """What happened to one (molecule, method, seed) row.

    The failure rule (:mod:`bench.metrics`) reads it: ``OUTPUT_FAILED`` and
    ``ORACLE_FAILED`` rows take the reference start's values, ``UNCONVERGED``
    rows count with the steps they used, and a molecule whose reference row or
    ground state is ``REFERENCE_FAILED`` is left out of every method (counted).
    """

    OK = "ok"
    #: The oracle relaxation stopped at its step limit without reaching fmax.
    UNCONVERGED = "unconverged"
    #: The method gave no usable structure (exception, NaN/inf, wrong shape, coincident atoms).
    OUTPUT_FAILED = "output_failed"
    #: The oracle failed on the method's structure (SCF not converged, NaN forces, crash).
    ORACLE_FAILED = "oracle_failed"
    #: The molecule's reference (ground state or reference start) has no oracle value.
    REFERENCE_FAILED = "reference_failed"
