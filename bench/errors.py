"""The exceptions edm-bench raises, and when.

Input problems are found *before* any calculation (:class:`InputError` and its
subclasses); problems of a calculation that was started are
:class:`OracleFailure` (a subclass of ASE's ``CalculationFailed`` so ASE-aware
code catches it too). Runners catch exactly these, record them with the
molecule's id, and carry on with the rest of the batch.
"""

from __future__ import annotations

from ase.calculators.calculator import CalculationFailed


class EdmBenchError(Exception):
    """Base class of every error raised on purpose by edm-bench."""


class InputError(EdmBenchError, ValueError):
    """A file, record or molecule cannot be used; raised before any calculation.

    The message names the file or molecule and the reason, e.g.
    ``"dsgdb9nsd_000004.xyz (record 1): line 3: cannot parse 'x1' as a number"``.
    """


class UnsupportedMoleculeError(InputError):
    """A well-formed molecule that the requested oracle or model cannot treat
    (an element it lacks, an open shell it does not support, ...)."""


class SettingsError(EdmBenchError, ValueError):
    """A setting the user gave is unknown or out of range (e.g. an oracle setting
    the oracle does not have); raised before any calculation."""


class OracleFailure(EdmBenchError, CalculationFailed):
    """An oracle calculation was started and failed: SCF not converged, NaN or
    infinite energy or forces, or an exception inside the quantum-chemistry code.

    Runners record it as a failure with its message, never as a number.
    """


class StoreError(EdmBenchError):
    """The results store cannot be opened or is not an edm-bench store."""
