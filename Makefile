PYTHON ?= python
WORKERS ?= 2

.PHONY: data data-check

# Ethanol training + held-out trajectories (recipes/ethanol_data.json) into data/ethanol/.
data: data-check
	$(PYTHON) recipes/ethanol_data.py --workers $(WORKERS)

# Verify the recipe settings against their recorded sha256.
data-check:
	$(PYTHON) recipes/ethanol_data.py --check
