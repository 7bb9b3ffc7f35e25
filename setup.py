"""Map the top-level folders onto one import namespace, ``attnlab.*``.

``reference/`` becomes ``attnlab.reference``, ``fastpath/numba/`` becomes ``attnlab.fastpath.numba``
and so on; ``attnlab/`` itself holds the CLI and the shared core.  Every folder with an
``__init__.py`` below a mapped root is discovered, so adding a subpackage needs no edit here.
"""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
ROOTS = ["attnlab", "reference", "theory", "synthetic", "fastpath", "proofs_checks"]


def discover() -> dict[str, str]:
    package_dir: dict[str, str] = {}
    for root in ROOTS:
        base = "attnlab" if root == "attnlab" else f"attnlab.{root}"
        for init in sorted((HERE / root).rglob("__init__.py")):
            folder = init.parent
            if "__pycache__" in folder.parts:
                continue
            rel = folder.relative_to(HERE / root)
            name = ".".join([base, *rel.parts]) if rel.parts else base
            package_dir[name] = folder.relative_to(HERE).as_posix()
    return package_dir


PACKAGE_DIR = discover()

setup(
    packages=sorted(PACKAGE_DIR),
    package_dir=PACKAGE_DIR,
    package_data={"attnlab": ["py.typed"]},
)
