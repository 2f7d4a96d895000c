# Two commands a user needs: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VLFEAT := $(VENV)/.vlfeat
CHROMIUM := $(VENV)/.chromium

.PHONY: demo test bench docs prior clean

# The package accepts a range of PyTorch versions (pyproject.toml); constraints.txt pins the ones
# this machine has on disk, so that the two commands install in minutes.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench,atlas,docs]'
	touch $(STAMP)

# A small atlas of EfficientNet-Lite0: four channels at three depths, every method, short settings
# (about 3 minutes on 2 cores), then its HTML report. Run it again and it resumes.
demo: $(STAMP)
	$(BIN)/preimage atlas --layers _blocks.2,_blocks.4,_blocks.5 --units 4 --chunk 2 \
	    --methods visualize,diverse,invariance,reliability --steps 100 --lambdas 0,0.08,0.32,1.28,5.12 \
	    --n 4 --repeats 4 --size 128 --out demo-out
	$(BIN)/preimage report demo-out

# The tests compare HOG and dense SIFT with VLFeat, the reference implementation:
# Debian's libvlfeat-dev and PyPI's cyvlfeat (built against it). The library does not need them.
$(VLFEAT): $(STAMP)
	@if [ ! -e /usr/include/vl/hog.h ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libvlfeat-dev; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq libvlfeat-dev; fi; fi
	$(BIN)/pip install --quiet -c constraints.txt cython numpy
	$(BIN)/pip install --quiet -c constraints.txt --no-build-isolation cyvlfeat==0.7.1
	touch $(VLFEAT)

# The report's browser test opens it in Debian's headless Chromium.
$(CHROMIUM):
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; fi
	mkdir -p $(VENV) && touch $(CHROMIUM)

# Lint and format first: a lint error fails the tests (ruff's settings are in pyproject.toml).
test: $(VLFEAT) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PREIMAGE_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q

# The documentation (MkDocs, Material theme, the API reference from the docstrings), offline:
# no web fonts, no CDN. Open site/index.html.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(VLFEAT)
	$(BIN)/python benchmarks/bench_render.py --steps 8 --rounds 7
	$(BIN)/python benchmarks/bench_affine_warp.py
	$(BIN)/python benchmarks/bench_fast_copy.py
	$(BIN)/python benchmarks/bench_diverse.py
	$(BIN)/python benchmarks/bench_handcrafted.py
	$(BIN)/python benchmarks/bench_atlas_ray.py --rounds 3
	$(BIN)/python benchmarks/bench_diversity_distance.py

# The packaged PixelCNN++ prior: trained on scikit-image's photographs (resumes from build/prior.pt)
prior: $(STAMP)
	mkdir -p build
	OMP_NUM_THREADS=1 $(BIN)/preimage prior train --images samples --patch 16 --steps 2000 --batch 32 \
	    --filters 32 --resnets 2 --scales 2 --mixtures 5 --eval-every 100 \
	    --out build/prior.pt --export src/preimage/data/pixelcnn_default.pt

clean:
	rm -rf $(VENV) demo-out site
