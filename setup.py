"""Install mammoseg: `pip install -e .` (add `[test]` for the test tools).

The version has one home, ``__version__`` in ``mammoseg/__init__.py``: read from its text here
(importing the package would need its dependencies installed first).
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _version() -> str:
    text = (HERE / "mammoseg" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if found is None:
        raise RuntimeError('mammoseg/__init__.py: no line `__version__ = "X.Y.Z"`')
    return found.group(1)


setup(
    name="mammoseg",
    version=_version(),
    description=(
        "Breast-tumour segmentation on mammograms in Keras 3: a runnable reproduction of "
        "Aung, Valdivia and Weerawardhena (2018) and what goes beyond it."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["mammoseg", "mammoseg.*"]),
    # py.typed: the package is typed (PEP 561); the SHA-256 sums of the standard mini-MIAS
    # archive, for `mammoseg.data.verify_mias`
    package_data={"mammoseg": ["py.typed"], "mammoseg.data": ["mias-sha256.txt"]},
    install_requires=_requirements(),
    # nbclient, nbformat, ipykernel: tests/test_notebook.py runs notebooks/tutorial.ipynb
    extras_require={
        "test": ["pytest>=7.4", "ruff>=0.5", "nbclient>=0.8", "nbformat>=5.7", "ipykernel>=6.0"]
    },
    entry_points={"console_scripts": ["mammoseg=mammoseg.cli:main"]},
    license="MIT",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
