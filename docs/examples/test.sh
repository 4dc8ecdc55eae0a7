python3 -m venv .venv && .venv/bin/pip install -q "torch==2.13.0" -e ".[test]" && .venv/bin/python -m pytest -q
