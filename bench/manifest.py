"""Run manifests: everything needed to say where a number came from."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import bench

_PACKAGES = ("numpy", "torch", "rdkit", "ase", "tblite", "pyscf", "pandas", "onnxruntime", "triton")


def git_revision(path: Path | None = None) -> str:
    """``git describe`` of the checkout holding edm-bench ('unknown' outside git)."""
    root = path or Path(bench.__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def hardware() -> dict[str, Any]:
    """CPU model, core count and memory of this machine."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib, "machine": platform.machine()}


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "edm-bench": bench.__version__}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def make_manifest(settings: dict[str, Any]) -> dict[str, Any]:
    """A manifest for a run with these settings."""
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_revision": git_revision(),
        "versions": package_versions(),
        "hardware": hardware(),
        "settings": settings,
    }
