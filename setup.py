"""Package discovery: the library lives in worldengine_lab/, the UI layer in widgets/ installed as
worldengine_lab.widgets (never as a top-level ``widgets`` package). Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

library = find_packages(include=["worldengine_lab", "worldengine_lab.*"])
ui = ["worldengine_lab.widgets"] + [f"worldengine_lab.widgets.{p}" for p in find_packages("widgets")]
setup(
    packages=library + ui,
    package_dir={"worldengine_lab.widgets": "widgets"},
)
