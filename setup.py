"""The repository root is the package `soundstage`; list its subpackages for setuptools."""
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
SKIP = {"tests", "benchmarks", "build", "dist", ".git"}
subpackages = sorted(
    "soundstage." + ".".join(p.parent.relative_to(ROOT).parts)
    for p in ROOT.glob("*/**/__init__.py")
    if p.parent.relative_to(ROOT).parts[0] not in SKIP
)
setup(packages=["soundstage", *subpackages], package_dir={"soundstage": "."})
