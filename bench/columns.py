"""Column names of every results table, in one place so tasks, store and reports
cannot drift apart. Units are part of the names."""

from enum import StrEnum


class Col(StrEnum):
    ID = "id"
    SMILES = "smiles"
    N_ATOMS = "n_atoms"
    METHOD = "method"
    STATUS = "status"
    MESSAGE = "message"
    ENERGY_ABOVE_GROUND = "energy_above_ground_kcal_mol"
    N_STEPS = "n_steps"
    N_FORCE_CALLS = "n_force_calls"
    WALL_S = "wall_s"
    CONVERGED = "converged"
    RELAXED_ENERGY = "relaxed_energy_ev"
    SPEEDUP = "speedup"
    DELTA_E = "delta_e_kcal_mol"
    REFERENCE_N_STEPS = "reference_n_steps"
