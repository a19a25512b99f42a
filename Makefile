PYTHON ?= python
WORKERS ?= 2

.PHONY: data data-check docs-spectrum

# Ethanol training + held-out trajectories (recipes/ethanol_data.json) into data/ethanol/.
data: data-check
	$(PYTHON) recipes/ethanol_data.py --workers $(WORKERS)

# Verify the recipe settings against their recorded sha256.
data-check:
	$(PYTHON) recipes/ethanol_data.py --check

# docs/spectrum.png: the shipped model (exported/ethanol) unrolled from the 10 held-out
# starts for 10 ps, its VACF spectrum against the held-out GFN2-xTB trajectories, plus
# segment errors, stability and GFN2 energy conservation in runs/docs-spectrum/report.json.
docs-spectrum:
	$(PYTHON) cli.py evaluate --reference data/ethanol/heldout --out runs/docs-spectrum \
		--long-starts 10 --long-duration-fs 10000 --engine gfn2 --energy-every 100 \
		--workers $(WORKERS)
	mkdir -p docs && cp runs/docs-spectrum/spectrum.png docs/spectrum.png
