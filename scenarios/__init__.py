"""The k6 scenarios and chaos experiments, installed as package data `payctl.scenarios`
(see [tool.setuptools] in pyproject.toml). Nothing to import here."""
